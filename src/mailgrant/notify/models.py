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


# --- Alerts for people: channels, incidents and the notices sent about them ------------------

ALERT_HEALTHS = ("failing", "needs_reauthorization")
ALERT_KINDS = ("grant", "mailbox", "client", "directory", "webhook")


def default_alert_healths() -> list[str]:
    return list(ALERT_HEALTHS)


def default_alert_kinds() -> list[str]:
    return list(ALERT_KINDS)


class NotificationChannel(models.Model):
    """Where people hear of incidents: an email to some addresses (through one of mailgrant's
    outgoing mailboxes, or Django's own SMTP settings), or an event to one webhook endpoint."""

    class Kind(models.TextChoices):
        EMAIL = "email", "Email"
        WEBHOOK = "webhook", "Webhook"

    name = models.CharField(max_length=100, unique=True)
    kind = models.CharField(max_length=10, choices=Kind.choices, default=Kind.EMAIL)
    enabled = models.BooleanField(default=True)
    recipients = models.JSONField(
        default=list, blank=True, help_text="Email: the addresses notices go to."
    )
    mailbox = models.ForeignKey(
        Mailbox,
        null=True,
        blank=True,
        # Deleting the mailbox falls back to Django's SMTP settings rather than refusing the
        # delete: the mailbox services know nothing of the channels above them.
        on_delete=models.SET_NULL,
        related_name="+",
        limit_choices_to={"protocol": Mailbox.Protocol.SMTP},
        help_text="Email: the outgoing (SMTP) mailbox notices are sent through; empty: "
        "Django's SMTP settings (MAILGRANT_EMAIL_*).",
    )
    endpoint = models.ForeignKey(
        WebhookEndpoint,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="+",
        help_text="Webhook: the endpoint that receives incident.* events.",
    )
    healths = models.JSONField(
        default=default_alert_healths,
        help_text="Healths it hears about (failing, needs_reauthorization).",
    )
    subject_kinds = models.JSONField(
        default=default_alert_kinds,
        help_text="Objects it hears about: grant, mailbox, client, directory, webhook.",
    )
    only_mailbox = models.ForeignKey(
        Mailbox,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="+",
        help_text="Only incidents of this mailbox.",
    )
    only_client = models.ForeignKey(
        OAuthClient,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="+",
        help_text="Only incidents of this client, its grants and its mailboxes.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Incident(models.Model):
    """A grant, client, mailbox, directory or webhook endpoint that is failing or needs
    re-authorization, from when it went bad until it is well again: one incident however many
    attempts fail meanwhile."""

    subject_type = models.CharField(max_length=100, help_text="app_label.model")
    subject_id = models.CharField(max_length=100)
    subject_kind = models.CharField(max_length=20, help_text="grant, mailbox, client, ...")
    subject_name = models.CharField(max_length=300)
    # Plain ids, as events keep them: the incident outlives the object it tells of.
    mailbox_ref = models.BigIntegerField(null=True, blank=True)
    client_ref = models.BigIntegerField(null=True, blank=True)
    health = models.CharField(max_length=24)
    reason = models.CharField(max_length=64, blank=True)
    hint = models.TextField(blank=True)
    url = models.CharField("URL", max_length=2000, blank=True, help_text="The page that fixes it.")
    since = models.DateTimeField(null=True, blank=True, help_text="When it went bad.")
    opened_at = models.DateTimeField()
    last_notice_at = models.DateTimeField()
    reminders = models.PositiveIntegerField(default=0)
    resolved_at = models.DateTimeField(null=True, blank=True, db_index=True)
    resolution = models.CharField(max_length=100, blank=True, help_text="ok again, deleted, ...")

    class Meta:
        ordering = ["-opened_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["subject_type", "subject_id"],
                condition=models.Q(resolved_at__isnull=True),
                name="incident_open_once",
            )
        ]

    def __str__(self) -> str:
        return f"{self.subject_kind.capitalize()} {self.subject_name} {self.health}"

    @property
    def is_open(self) -> bool:
        return self.resolved_at is None


class Notice(models.Model):
    """One message about an incident (opened, reminder, resolved) for one channel, sent by the
    worker and retried with backoff; a webhook channel's is handed to a Delivery at once."""

    class Kind(models.TextChoices):
        OPENED = "opened"
        REMINDER = "reminder"
        RESOLVED = "resolved"
        TEST = "test"

    class State(models.TextChoices):
        PENDING = "pending"
        SENT = "sent"
        HANDED = "handed", "Handed to webhook delivery"
        FAILED = "failed", "Given up"

    incident = models.ForeignKey(
        Incident, null=True, blank=True, on_delete=models.CASCADE, related_name="notices"
    )
    channel = models.ForeignKey(
        NotificationChannel, on_delete=models.CASCADE, related_name="notices"
    )
    kind = models.CharField(max_length=10, choices=Kind.choices)
    # Which reminder (1, 2, ...) of the incident; 0 for the others.
    round = models.PositiveIntegerField(default=0)
    state = models.CharField(
        max_length=10, choices=State.choices, default=State.PENDING, db_index=True
    )
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True, db_index=True)
    claimed_by = models.CharField(max_length=200, blank=True, editable=False)
    claimed_until = models.DateTimeField(null=True, blank=True, editable=False)
    delivery = models.ForeignKey(
        Delivery, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField()
    sent_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["incident", "channel", "kind", "round"], name="notice_once"
            )
        ]

    def __str__(self) -> str:
        return f"{self.kind} to {self.channel_id}: {self.state}"
