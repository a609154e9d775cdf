from __future__ import annotations

from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models

from mailgrant.common.fields import SealedField
from mailgrant.common.models import HealthTracked
from mailgrant.oauth.models import Grant, OAuthClient


def validate_post_fetch_action(value: str) -> None:
    if value in {"keep", "mark_seen", "delete"}:
        return
    if value.startswith("move:") and value[5:].strip() and not any(c in value for c in "\r\n"):
        return
    raise ValidationError("Use keep, mark_seen, delete or move:<folder>.")


class Mailbox(HealthTracked):
    """A mailbox mailgrant fetches from (IMAP, POP3) or sends through (SMTP)."""

    health_events = {
        "failing": "mailbox.failing",
        "needs_reauthorization": "mailbox.failing",
        "recovered": "mailbox.recovered",
    }

    def event_refs(self) -> dict[str, int | None]:
        return {"mailbox_id": self.pk, "client_id": self.oauth_client_id}

    class Direction(models.TextChoices):
        INCOMING = "incoming", "Incoming"
        OUTGOING = "outgoing", "Outgoing"

    class Protocol(models.TextChoices):
        IMAP = "imap", "IMAP"
        POP3 = "pop3", "POP3"
        SMTP = "smtp", "SMTP"

    class Security(models.TextChoices):
        SSL = "ssl", "SSL/TLS"
        STARTTLS = "starttls", "STARTTLS"
        NONE = "none", "None (plaintext)"

    class AuthMethod(models.TextChoices):
        PASSWORD = "password", "Password"
        OAUTH2 = "oauth2", "OAuth2"

    class Push(models.TextChoices):
        POLL = "poll", "Poll on the interval"
        IDLE = "idle", "IMAP IDLE (fetch as soon as mail arrives)"

    class Mechanism(models.TextChoices):
        XOAUTH2 = "xoauth2", "XOAUTH2"
        OAUTHBEARER = "oauthbearer", "OAUTHBEARER"

    name = models.CharField(max_length=200, unique=True)
    direction = models.CharField(
        max_length=10, choices=Direction.choices, default=Direction.INCOMING
    )
    protocol = models.CharField(max_length=10, choices=Protocol.choices, default=Protocol.IMAP)
    host = models.CharField(max_length=255)
    port = models.PositiveIntegerField(validators=[MinValueValidator(1), MaxValueValidator(65535)])
    security = models.CharField(max_length=10, choices=Security.choices, default=Security.SSL)
    username = models.CharField(max_length=320)
    auth_method = models.CharField(
        max_length=10, choices=AuthMethod.choices, default=AuthMethod.OAUTH2
    )
    password = SealedField(blank=True, help_text="Write-only: stored encrypted.")
    oauth_client = models.ForeignKey(
        OAuthClient,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="mailboxes",
        limit_choices_to={"type": OAuthClient.Type.MAILBOX},
        verbose_name="OAuth client",
    )
    grant = models.ForeignKey(
        Grant,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="mailboxes",
        help_text="The authorized account this mailbox uses; empty: the client's default.",
    )
    sasl_mechanism = models.CharField(
        max_length=12,
        choices=Mechanism.choices,
        default=Mechanism.XOAUTH2,
        verbose_name="SASL mechanism",
    )
    smtp_username = models.CharField(
        max_length=320,
        blank=True,
        verbose_name="SMTP username",
        help_text="Outgoing: log in as this user when it differs from the mailbox address "
        "(a shared mailbox sent through a licensed delegate).",
    )
    folder = models.CharField(max_length=500, default="INBOX", blank=True)
    post_fetch_action = models.CharField(
        max_length=510,
        default="keep",
        validators=[validate_post_fetch_action],
        help_text="keep, mark_seen, delete or move:<folder>; runs only once the message is "
        "stored here.",
    )
    enabled = models.BooleanField(default=True)
    poll_interval = models.PositiveIntegerField(default=300, help_text="Seconds between fetches.")
    push = models.CharField(
        max_length=10,
        choices=Push.choices,
        default=Push.POLL,
        help_text="IMAP only: IDLE keeps a connection open and fetches when mail arrives "
        "(and still polls on the interval).",
    )

    last_fetch_at = models.DateTimeField(null=True, blank=True)
    last_success_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    next_poll_at = models.DateTimeField(null=True, blank=True, db_index=True)
    # The worker fetching it now, and until when its claim holds unless renewed (worker).
    claimed_by = models.CharField(max_length=200, blank=True, editable=False)
    claimed_until = models.DateTimeField(null=True, blank=True, editable=False)
    # The worker keeping its IDLE connection, and until when its lease holds unless renewed
    # (mailboxes.idle): one watcher a mailbox, however many workers.
    idle_by = models.CharField(max_length=200, blank=True, editable=False)
    idle_until = models.DateTimeField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    # What the last save did beyond the fields given (a grant to authorize again because the
    # server changed), for the entry point to tell whoever saved; not stored.
    save_notice: str = ""

    class Meta:
        ordering = ["name"]
        verbose_name_plural = "mailboxes"
        # Sending as the mailbox (POST /mailboxes/{id}/send) is its own right: whoever may fix
        # a mailbox's settings need not speak in its name, nor a sending integration edit it.
        permissions = [("send_message", "Can send mail as the mailbox")]

    def __str__(self) -> str:
        return self.name

    @property
    def login_username(self) -> str:
        """Who logs in: SMTP may use a delegate (smtp_username), everything else the mailbox."""
        if self.protocol == self.Protocol.SMTP and self.smtp_username:
            return self.smtp_username
        return self.username


class Message(models.Model):
    """A fetched message: its raw bytes live in a file of the message store
    (MAILGRANT_MESSAGE_STORE); this is its index."""

    mailbox = models.ForeignKey(Mailbox, on_delete=models.CASCADE, related_name="messages")
    folder = models.CharField(max_length=500)
    uidvalidity = models.BigIntegerField(default=0, help_text="IMAP UIDVALIDITY (POP3: 0)")
    uid = models.CharField(max_length=100, help_text="IMAP UID, or POP3 UIDL")
    message_id = models.CharField(max_length=998, blank=True, db_index=True)
    sender = models.CharField("from", max_length=998, blank=True)
    recipients = models.TextField("to", blank=True)
    subject = models.TextField(blank=True)
    date = models.DateTimeField(null=True, blank=True)
    size = models.PositiveBigIntegerField()
    path = models.CharField(max_length=500, help_text="Relative to the message store")
    fetched_at = models.DateTimeField(auto_now_add=True, db_index=True)
    post_action_done = models.BooleanField(default=False)

    class Meta:
        ordering = ["-fetched_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["mailbox", "folder", "uidvalidity", "uid"],
                name="one_row_per_server_message",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.subject or '(no subject)'} <{self.message_id}>"
