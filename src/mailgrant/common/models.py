import functools
from collections.abc import Iterable
from datetime import datetime
from typing import Any, ClassVar

from django.conf import settings
from django.db import models, transaction

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


class Event(models.Model):
    """The outbox: one row for each change reported, written in the change's own transaction
    (common.events), so no event tells of a change that did not happen and none is missed.
    Kept MAILGRANT_EVENT_RETENTION, read by the API and fanned out to webhook deliveries."""

    uid = models.CharField(max_length=40, unique=True, help_text="The webhook-id.")
    type = models.CharField(max_length=64, db_index=True)
    created_at = models.DateTimeField(db_index=True)
    subject_type = models.CharField(max_length=100, blank=True, help_text="app_label.model")
    subject_id = models.CharField(max_length=100, blank=True)
    subject_name = models.CharField(max_length=300, blank=True)
    # Plain ids, not foreign keys: the outbox is below the apps it reports on, and an event
    # outlives the object it tells of.
    mailbox_ref = models.BigIntegerField(null=True, blank=True, db_index=True)
    client_ref = models.BigIntegerField(null=True, blank=True, db_index=True)
    sequence = models.BigIntegerField(
        null=True, blank=True, help_text="message.received: the mailbox's, gap-free"
    )
    data = models.JSONField(default=dict)
    dispatched = models.BooleanField(default=False, help_text="Fanned out to webhook deliveries.")

    class Meta:
        ordering = ["id"]
        indexes = [
            models.Index(
                fields=["id"], name="event_undispatched", condition=models.Q(dispatched=False)
            )
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["mailbox_ref", "sequence"],
                name="event_mailbox_sequence",
                condition=models.Q(sequence__isnull=False),
            )
        ]

    def __str__(self) -> str:
        return f"{self.uid} {self.type} {self.subject_name}"


class EventSequence(models.Model):
    """A gap-free counter (e.g. "mailbox:12" for its message.received events), taken in the
    transaction of the events it numbers: a rollback gives the numbers back."""

    key = models.CharField(max_length=100, unique=True)
    value = models.BigIntegerField(default=0)

    def __str__(self) -> str:
        return f"{self.key} = {self.value}"


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

    # The event each change of health reports (common.events): keyed by the new health's
    # reason code, else by the health; "recovered" is ok again after failing or
    # needs_reauthorization. A change to a health whose event is the previous one's reports
    # nothing again (failing to needs_reauthorization of a mailbox, say).
    health_events: ClassVar[dict[str, str]] = {}

    class Meta:
        abstract = True

    def save(self, *args: Any, **kwargs: Any) -> None:
        """Saved with the event its change of health reports, in one transaction."""
        if self.__dict__.get("_health_from") is None:
            super().save(*args, **kwargs)
            return
        with transaction.atomic(using=kwargs.get("using")):
            super().save(*args, **kwargs)
            self.health_announce()

    def health_load(self, values: dict[str, Any]) -> None:
        """Take the health fields as the database has them now (`values`: health_* and
        consecutive_failures, e.g. counted by another process since this was loaded): the
        next change is reported against them."""
        for name, value in values.items():
            setattr(self, name, value)
        self.__dict__.pop("_health_from", None)

    def health_announce(self) -> None:
        """Write the event of the health change since the last announce, if it reports one
        (for a service that writes the row itself, in its own transaction; save() calls it)."""
        previous = self.__dict__.pop("_health_from", None)
        if previous is None or previous == self.health:
            return
        name = self._health_event_name(self.health, self.health_reason, previous)
        if not name or name == self._health_event_name(previous, "", None):
            return
        from mailgrant.common.events import admin_url, event_record

        refs = self.event_refs()
        event_record(
            type=name,
            subject=self,
            data={
                "health": self.health,
                "previous_health": previous,
                "reason": self.health_reason,
                "hint": self.health_hint,
                "since": self.health_since.isoformat() if self.health_since else None,
                "consecutive_failures": self.consecutive_failures,
                "url": admin_url(self),
            },
            mailbox_id=refs.get("mailbox_id"),
            client_id=refs.get("client_id"),
        )

    def _health_event_name(self, health: str, reason: str, previous: str | None) -> str:
        events = self.health_events
        if health == Health.OK.value:
            bad = (Health.FAILING.value, Health.NEEDS_REAUTHORIZATION.value)
            return events.get("recovered", "") if previous in bad else ""
        return events.get(reason) or events.get(health, "")

    def event_refs(self) -> dict[str, int | None]:
        """The mailbox and client its events are filed under (webhooks filter by them)."""
        return {}

    def health_set(
        self, *, health: Health, reason: str = "", hint: str = "", now: datetime
    ) -> list[str]:
        """Move to `health` (with its reason and hint); the names of the fields that changed,
        for `save(update_fields=...)`. `health_since` moves only when the health itself does."""
        changed = []
        if self.health != health:
            self.__dict__.setdefault("_health_from", self.health)
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
