from django.conf import settings
from django.db import models
from django.utils import timezone


class ApiKey(models.Model):
    """A key for the REST API. Only its SHA-256 is stored; the key is shown once, at creation."""

    class Scope(models.TextChoices):
        READ = "read", "Read"
        WRITE = "write", "Write"
        TOKENS = "tokens", "Access tokens (broker)"
        STATUS = "status", "Status overview (GET /api/v1/status)"
        METRICS = "metrics", "Prometheus metrics (GET /metrics)"
        EVENTS = "events", "Events (GET /api/v1/events: catch up on what webhooks deliver)"

    name = models.CharField(max_length=200, unique=True)
    prefix = models.CharField(
        max_length=16, help_text="The key's first characters, to tell keys apart"
    )
    key_hash = models.CharField(max_length=64, unique=True)
    scopes = models.JSONField(default=list)
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(
        null=True, blank=True, help_text="Refused from then on, as a revoked key; empty: never"
    )

    class Meta:
        ordering = ["name"]
        verbose_name = "API key"

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def is_expired(self) -> bool:
        return self.expires_at is not None and self.expires_at <= timezone.now()

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None and not self.is_expired
