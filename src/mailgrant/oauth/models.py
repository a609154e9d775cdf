from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q

from mailgrant.common.fields import Sealed, SealedField, SealedJSONField, URLField
from mailgrant.common.models import HealthTracked
from mailgrant.oauth.protocol import TokenSet
from mailgrant.providers import MAILBOX, PROVIDERS, USER


class OAuthClient(HealthTracked):
    """One application registered at a provider (the fields of its form, README). It knows
    nothing of who uses it: mailboxes point at it, sign-in settings (sso) extend it."""

    health_events = {
        "client.secret_expiring": "client.secret_expiring",
        "client.secret_expired": "client.secret_expired",
        "failing": "client.failing",
        "needs_reauthorization": "client.failing",
        "recovered": "client.recovered",
    }

    def event_refs(self) -> dict[str, int | None]:
        return {"client_id": self.pk}

    class Type(models.TextChoices):
        MAILBOX = MAILBOX, "Email box"
        USER = USER, "User"

    class Status(models.TextChoices):
        ENABLED = "enabled", "Enabled"
        DISABLED = "disabled", "Disabled"

    name = models.CharField(max_length=200, unique=True)
    provider = models.CharField(
        max_length=20, choices=[(p.id, p.name) for p in PROVIDERS.values()], default="generic"
    )
    type = models.CharField(max_length=20, choices=Type.choices, default=Type.MAILBOX)
    client_id = models.CharField("Client ID", max_length=500)
    client_secret = SealedField(
        "Client secret", blank=True, help_text="Write-only: stored encrypted, never shown again."
    )
    tenant = models.CharField(
        max_length=200,
        blank=True,
        help_text="Azure only: tenant ID or domain, or organizations / common. "
        "Empty means organizations.",
    )
    issuer = URLField(
        max_length=500,
        blank=True,
        help_text="Generic only: the OpenID issuer URL; discovery fills the empty URLs below.",
    )
    scope = models.CharField(
        max_length=2000, blank=True, help_text="Empty means the provider's scopes for this type."
    )
    authorize_url = URLField("Url Authorize", max_length=500, blank=True)
    token_url = URLField("Url Access Token", max_length=500, blank=True)
    # Never holds a password: a proxy password is sealed in proxy_password and shown as ***.
    proxy = models.CharField(
        max_length=500,
        blank=True,
        help_text="e.g. http://proxy.example.com:3128 or http://user:password@proxy:3128; "
        "empty: direct. The password is stored encrypted and shown as ***; keep *** to keep it. "
        "A new proxy host, port or user needs its password typed again.",
    )
    proxy_password = SealedField(blank=True, editable=False)
    verify_ssl = models.BooleanField("Verify SSL", default=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.ENABLED)
    scope_separator = models.CharField(
        "Scope Separator Char",
        max_length=5,
        blank=True,
        default=" ",
        help_text="Joins the scopes in the authorize request; a space unless the provider "
        "wants another.",
    )
    userinfo_endpoint = URLField("Endpoint User Data", max_length=500, blank=True)
    secret_expires_at = models.DateTimeField(
        "Client secret expires",
        null=True,
        blank=True,
        help_text="When the client secret expires at the provider (Azure shows it under "
        "Certificates & secrets): a warning 30 days before, failing once it has passed.",
    )

    # What OIDC discovery found (issuer, endpoints, jwks_uri): filled on save, not a form field.
    metadata = models.JSONField(default=dict, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    # What the last save did beyond the fields given (a secret cleared because the endpoints
    # changed), for the entry point to tell whoever saved; not stored.
    save_notice: str = ""

    class Meta:
        ordering = ["name"]
        verbose_name = "OAuth client"

    def __str__(self) -> str:
        return self.name

    @property
    def is_enabled(self) -> bool:
        return self.status == self.Status.ENABLED


class Grant(HealthTracked):
    """One account's authorization of a client, with its tokens (encrypted)."""

    health_events = {
        "needs_reauthorization": "grant.needs_reauthorization",
        "failing": "grant.failing",
        "recovered": "grant.recovered",
    }

    def event_refs(self) -> dict[str, int | None]:
        return {"client_id": self.client_id}

    class State(models.TextChoices):
        UNAUTHORIZED = "unauthorized", "Unauthorized"
        AUTHORIZED = "authorized", "Authorized"
        REAUTHORIZATION_REQUIRED = "reauthorization_required", "Reauthorization required"
        ERROR = "error", "Error"

    client = models.ForeignKey(OAuthClient, on_delete=models.CASCADE, related_name="grants")
    is_default = models.BooleanField(default=False)
    account = models.CharField(max_length=320, blank=True)
    subject = models.CharField(max_length=320, blank=True)
    state = models.CharField(max_length=30, choices=State.choices, default=State.UNAUTHORIZED)
    token_set = SealedJSONField(blank=True)
    original_token_set = SealedJSONField(blank=True)
    scope = models.CharField(max_length=2000, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    authorized_at = models.DateTimeField(null=True, blank=True)
    last_refresh_at = models.DateTimeField(null=True, blank=True)
    refresh_count = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)
    last_error_at = models.DateTimeField(null=True, blank=True)
    # The refresh lease (services.tokens.grant_refresh): set while one caller refreshes.
    refreshing_until = models.DateTimeField(null=True, blank=True, editable=False)
    # When the worker refreshes the grant next (ahead of expiry, or to keep it alive).
    next_refresh_at = models.DateTimeField(null=True, blank=True, db_index=True, editable=False)
    # The worker that claimed the due refresh (common.claims; the claim's lease is
    # next_refresh_at itself, moved past the refresh's own lease).
    refresh_claimed_by = models.CharField(max_length=200, blank=True, editable=False)
    # When a token was last handed out or used to log in (kept coarse: at most once a minute).
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["client__name", "-is_default", "account"]
        constraints = [
            models.UniqueConstraint(
                fields=["client"], condition=Q(is_default=True), name="one_default_grant_per_client"
            ),
        ]
        # The token broker's right for an admin session (POST /grants/{id}/access-token): a live
        # access token is more than viewing or changing the grant.
        permissions = [("issue_token", "Can issue access tokens of the grant (token broker)")]

    def __str__(self) -> str:
        return self.describe(client_name=self.client.name, account=self.account)

    @staticmethod
    def describe(*, client_name: str, account: str) -> str:
        """How a grant is named (its str), from its client's name and its account."""
        return f"{client_name}: {account or 'not authorized'}"

    def tokens(self) -> TokenSet | None:
        """The current token set, decrypted; None before the first authorization."""
        value = self.token_set
        if isinstance(value, Sealed):
            return TokenSet.from_dict(value.reveal_json())
        if isinstance(value, dict):  # assigned in this process, not yet read back
            return TokenSet.from_dict(value)
        return None


class PendingAuthorization(models.Model):
    """A started Validate: single use, short-lived, bound to whoever started it."""

    class Purpose(models.TextChoices):
        VALIDATE = "validate", "Validate (admin session)"
        CLI = "cli", "Command line"
        API = "api", "API"
        LOGIN = "login", "Sign-in (SSO)"

    class Outcome(models.TextChoices):
        PENDING = "pending", "Pending"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"

    state_hash = models.CharField(max_length=64, unique=True)
    binding_hash = models.CharField(max_length=64)
    client = models.ForeignKey(OAuthClient, on_delete=models.CASCADE, related_name="+")
    grant = models.ForeignKey(
        Grant,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="+",
        help_text="The grant to (re)authorize; empty means the client's default grant.",
    )
    purpose = models.CharField(max_length=20, choices=Purpose.choices)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    started_by = models.CharField(
        max_length=200, blank=True, help_text="Who started it (user, API key, command line)."
    )
    code_verifier = SealedField()
    nonce = models.CharField(max_length=200, blank=True)
    redirect_uri = models.CharField(max_length=1000)
    return_url = models.CharField(
        max_length=1000, blank=True, help_text="Where the admin lands afterwards (a local path)."
    )
    expected_account = models.CharField(
        max_length=320,
        blank=True,
        help_text="Refuse another account than this one (a login hint, a mailbox's address).",
    )
    client_ip = models.GenericIPAddressField(
        null=True, blank=True, help_text="Where a start without an account came from (sign-in)."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(db_index=True)
    consumed_at = models.DateTimeField(null=True, blank=True)
    outcome = models.CharField(max_length=20, choices=Outcome.choices, default=Outcome.PENDING)
    message = models.TextField(blank=True)
    result_grant = models.ForeignKey(
        Grant, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    def __str__(self) -> str:
        return f"authorization of {self.client_id} ({self.outcome})"
