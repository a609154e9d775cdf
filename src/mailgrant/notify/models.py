"""Webhook endpoints, the deliveries of events to them and each attempt's record."""

from __future__ import annotations

from django.db import models

from mailgrant.common.fields import SealedField, URLField
from mailgrant.common.models import Event, HealthTracked
from mailgrant.mailboxes.models import Mailbox
from mailgrant.oauth.models import OAuthClient


class WebhookEndpoint(HealthTracked):
    """Where events are POSTed, signed per Standard Webhooks with its own secret."""

    health_events = {"failing": "webhook.failing", "recovered": "webhook.recovered"}

    name = models.CharField(max_length=100, unique=True)
    url = URLField("URL", max_length=2000)
    enabled = models.BooleanField(default=True)
    event_types = models.JSONField(
        default=list,
        blank=True,
        help_text="Event types it receives (e.g. message.received, grant.*); empty: all.",
    )
    mailbox = models.ForeignKey(
        Mailbox,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="+",
        help_text="Only this mailbox's events.",
    )
    client = models.ForeignKey(
        OAuthClient,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="+",
        help_text="Only this client's events (its grants' and mailboxes').",
    )
    secret = SealedField(
        blank=True, editable=False, help_text="The signing secret (whsec_...), shown once."
    )
    include_raw = models.BooleanField(
        default=False, help_text="message.received carries the raw message inline (base64)."
    )
    raw_max_bytes = models.PositiveIntegerField(
        default=1_000_000, help_text="Larger messages are sent by URL only."
    )
    disabled_reason = models.CharField(max_length=300, blank=True)
    failing_since = models.DateTimeField(
        null=True, blank=True, help_text="First failed attempt of the current streak."
    )
    last_success_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def event_refs(self) -> dict[str, int | None]:
        return {"mailbox_id": self.mailbox_id, "client_id": self.client_id}


class Delivery(models.Model):
    """One event for one endpoint: retried with the same webhook-id until it is delivered or
    given up."""

    class State(models.TextChoices):
        PENDING = "pending"
        DELIVERED = "delivered"
        FAILED = "failed", "Given up"
        CANCELLED = "cancelled"

    endpoint = models.ForeignKey(
        WebhookEndpoint, on_delete=models.CASCADE, related_name="deliveries"
    )
    event = models.ForeignKey(Event, on_delete=models.CASCADE, related_name="+")
    state = models.CharField(
        max_length=12, choices=State.choices, default=State.PENDING, db_index=True
    )
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True, db_index=True)
    claimed_by = models.CharField(max_length=200, blank=True)
    claimed_until = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    last_status = models.PositiveIntegerField(null=True, blank=True)
    last_error = models.TextField(blank=True)

    class Meta:
        ordering = ["-id"]
        constraints = [models.UniqueConstraint(fields=["endpoint", "event"], name="delivery_once")]
        verbose_name_plural = "deliveries"

    def __str__(self) -> str:
        return f"{self.event_id} to {self.endpoint_id}: {self.state}"


class DeliveryAttempt(models.Model):
    """What one POST of a delivery got: the status, how long, the first bytes answered."""

    delivery = models.ForeignKey(Delivery, on_delete=models.CASCADE, related_name="attempt_log")
    at = models.DateTimeField()
    status_code = models.PositiveIntegerField(null=True, blank=True)
    duration_ms = models.PositiveIntegerField(default=0)
    response_head = models.TextField(blank=True)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["-at", "-id"]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M:%S} {self.status_code or self.error}"
