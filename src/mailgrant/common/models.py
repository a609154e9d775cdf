import functools
from collections.abc import Iterable
from datetime import datetime

from django.conf import settings
from django.db import models

from mailgrant.common.health import HEALTH_CHOICES, Health, Reason


class AuditEvent(models.Model):
    """Who did what, when. Never a secret or token: services write only names and outcomes."""

    at = models.DateTimeField(auto_now_add=True, db_index=True)
    actor = models.CharField(max_length=200, help_text="user, API key or process")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    action = models.CharField(max_length=100, db_index=True)
    target_type = models.CharField(max_length=100, blank=True)
    target_id = models.CharField(max_length=100, blank=True)
    target_repr = models.CharField(max_length=300, blank=True)
    outcome = models.CharField(max_length=20, default="ok")
    message = models.TextField(blank=True)

    class Meta:
        ordering = ["-at", "-id"]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M:%S} {self.actor} {self.action} {self.target_repr}"


class AuditSpoolMark(models.Model):
    """How far an audit spool file has been moved into AuditEvent (common.audit_spool)."""

    file = models.CharField(max_length=200, unique=True)
    offset = models.BigIntegerField(default=0)

    def __str__(self) -> str:
        return f"{self.file} @ {self.offset}"


@functools.cache
def audit_insert_sql() -> str:
    """AuditEvent's row as one INSERT with %s placeholders, its columns read from the model
    (at, actor, user, action, target_type, target_id, target_repr, outcome, message): for the
    token broker, whose audit row the ORM's model and query building would cost more than the
    INSERT itself."""
    meta = AuditEvent._meta
    names = ["at", "actor", "user", "action", "target_type", "target_id", "target_repr"]
    columns = [str(meta.get_field(name).column) for name in [*names, "outcome", "message"]]  # type: ignore[union-attr]
    return (
        f"INSERT INTO {meta.db_table} ({', '.join(columns)}) "  # noqa: S608
        f"VALUES ({', '.join(['%s'] * len(columns))})"
    )


class HealthTracked(models.Model):
    """An object with a health (common.health): grants, clients, mailboxes, directories. The
    app's services move it through `health_failed` / `health_succeeded` / `health_set`, in the
    same transaction as the outcome they record."""

    health = models.CharField(
        max_length=24, choices=HEALTH_CHOICES, default=Health.OK.value, db_index=True
    )
    health_reason = models.CharField(
        max_length=64, blank=True, help_text="Stable code of why it is not ok (README)."
    )
    health_hint = models.TextField(blank=True, help_text="What fixes it, in plain words.")
    health_since = models.DateTimeField(
        null=True, blank=True, help_text="When the current health began."
    )
    consecutive_failures = models.PositiveIntegerField(default=0)

    class Meta:
        abstract = True

    def health_set(
        self, *, health: Health, reason: str = "", hint: str = "", now: datetime
    ) -> list[str]:
        """Move to `health` (with its reason and hint); the names of the fields that changed,
        for `save(update_fields=...)`. `health_since` moves only when the health itself does."""
        changed = []
        if self.health != health:
            self.health = health.value
            self.health_since = now
            changed += ["health", "health_since"]
        elif self.health_since is None:
            self.health_since = now
            changed.append("health_since")
        if self.health_reason != reason:
            self.health_reason = reason
            changed.append("health_reason")
        if self.health_hint != hint:
            self.health_hint = hint
            changed.append("health_hint")
        return changed

    def health_failed(self, *, reason: Reason, hint: str = "", now: datetime) -> list[str]:
        """One more failure for `reason` (`hint` overrides the reason's own, e.g. a provider's
        more precise words)."""
        self.consecutive_failures += 1
        changed = self.health_set(
            health=reason.health, reason=reason.code, hint=hint or reason.hint, now=now
        )
        return [*changed, "consecutive_failures"]

    def health_succeeded(self, *, now: datetime, health: Health = Health.OK) -> list[str]:
        """A success: ok again (or `health`, e.g. warning for a secret about to expire)."""
        changed = self.health_set(health=health, now=now)
        if self.consecutive_failures:
            self.consecutive_failures = 0
            changed.append("consecutive_failures")
        return changed

    def health_restart_on_change(
        self, *, fields: Iterable[str], forced: bool, now: datetime
    ) -> bool:
        """Against its stored row: a change of one of `fields` (or `forced`, e.g. a new
        password given), or leaving `disabled`, is a fresh start (ok, old failures forgotten)
        rather than waiting out a backoff the old settings earned. True when it restarted, for
        the caller to make it due at once."""
        stored = type(self)._default_manager.filter(pk=self.pk).first() if self.pk else None
        if stored is None:
            return False
        changed = forced or any(getattr(stored, f) != getattr(self, f) for f in fields)
        if not changed and stored.health != Health.DISABLED:
            return False
        self.health_succeeded(now=now)
        return True

    @property
    def health_state(self) -> Health:
        return Health(self.health)
