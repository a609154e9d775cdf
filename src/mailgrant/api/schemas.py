"""JSON shapes. Field names are the models' (a form field, a request body and a CLI flag name
the same thing); secrets are accepted and never returned."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Literal

from ninja import Field, Path, Schema
from ninja.pagination import LimitOffsetPagination
from pydantic import ConfigDict, field_validator
from pydantic_core import PydanticCustomError

from mailgrant.oauth.protocol import TokenSet
from mailgrant.oauth.services.authorization import StartedAuthorization

# An object's id in a URL: a positive 64-bit integer (a BigAutoField). Anything else is a 400,
# never a database overflow.
MAX_ID = 2**63 - 1
ObjectId = Annotated[int, Path(ge=1, le=MAX_ID)]


ProviderName = Literal["google", "azure", "generic"]
ClientType = Literal["mailbox", "user"]
ClientStatus = Literal["enabled", "disabled"]


def _has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_nul(v) for v in value)
    return False


class Input(Schema):
    """A request body: unknown fields are an error, and so is a value of the wrong JSON type
    (0 for false, "1" for 1), as the OpenAPI document says. NUL characters are refused
    everywhere: PostgreSQL cannot store them, and no name, URL or mail header may hold one."""

    model_config = ConfigDict(extra="forbid", strict=True)

    @field_validator("*", mode="after")
    @classmethod
    def _refuse_nul(cls, value: Any) -> Any:
        if _has_nul(value):
            raise PydanticCustomError("nul_character", "must not contain NUL characters")
        return value


MAX_PAGE = 1000


class Pagination(LimitOffsetPagination):
    """Limit and offset with bounds: at most MAX_PAGE items a page, and offset + limit within a
    64-bit integer (beyond it the database overflows: a 409 on SQLite, a 500 on PostgreSQL)."""

    class Input(Schema):
        limit: int = Field(100, ge=1, le=MAX_PAGE)
        offset: int = Field(0, ge=0, le=MAX_ID - MAX_PAGE)


class FieldProblem(Schema):
    field: str
    message: str


class Problem(Schema):
    """Every error: a stable `code`, a sentence, and the fields at fault for bad input."""

    code: str
    message: str
    fields: list[FieldProblem] | None = None
    details: dict[str, Any] | None = None


class HealthFieldsOut(Schema):
    """An object's health (README, "Health and reasons"), in its own routes' answers."""

    health: Literal["ok", "warning", "failing", "needs_reauthorization", "disabled"]
    health_reason: str = Field(description="stable code of why it is not ok; empty when ok")
    health_hint: str = Field(description="what fixes it, in plain words")
    health_since: datetime | None
    consecutive_failures: int
    next_attempt_at: datetime | None = Field(
        None, description="when the worker tries next (refresh, poll or sync)"
    )


def health_fields(obj: Any, *, next_attempt_at: datetime | None = None) -> dict[str, Any]:
    """HealthFieldsOut's values of a model object (for the routes that answer dicts)."""
    return {
        "health": obj.health,
        "health_reason": obj.health_reason,
        "health_hint": obj.health_hint,
        "health_since": obj.health_since,
        "consecutive_failures": obj.consecutive_failures,
        "next_attempt_at": next_attempt_at,
    }


def _attribute(obj: Any, name: str) -> Any:
    return obj.get(name) if isinstance(obj, dict) else getattr(obj, name, None)


class GrantOut(HealthFieldsOut):
    id: int
    client_id: int
    account: str
    state: str
    is_default: bool
    scope: str
    expires_at: datetime | None
    authorized_at: datetime | None
    last_refresh_at: datetime | None
    last_error: str

    @staticmethod
    def resolve_next_attempt_at(obj: Any) -> Any:
        return _attribute(obj, "next_refresh_at")


class OAuthClientBase(Input):
    provider: ProviderName | None = None
    type: ClientType | None = None
    client_id: str | None = Field(None, max_length=500)
    client_secret: str | None = Field(None, max_length=5000, description="write-only")
    tenant: str | None = Field(None, max_length=200)
    issuer: str | None = Field(None, max_length=500)
    scope: str | None = Field(None, max_length=2000)
    authorize_url: str | None = Field(None, max_length=500)
    token_url: str | None = Field(None, max_length=500)
    proxy: str | None = Field(None, max_length=500)
    verify_ssl: bool | None = None
    status: ClientStatus | None = None
    scope_separator: str | None = Field(None, max_length=5)
    userinfo_endpoint: str | None = Field(None, max_length=500)
    secret_expires_at: datetime | None = Field(
        None,
        strict=False,  # RFC 3339 text in JSON (_rfc3339 checks it first)
        description="when the client secret expires at the provider: health warning 30 days "
        "before, failing once passed",
    )
    user_data_source: Literal["id_token", "endpoint"] | None = None
    username_attribute: str | None = Field(None, max_length=200)
    user_fields: dict[str, str] | None = None
    user_create_expression: str | None = Field(None, max_length=10000)
    email_verified_required: bool | None = None
    allowed_organizations: list[Annotated[str, Field(min_length=1, max_length=253)]] | None = Field(
        None, max_length=100, description="Google hosted domains (hd) or Azure tenants (tid)"
    )
    login_button_caption: str | None = Field(None, max_length=200)
    login_button_icon: str | None = Field(None, max_length=200)
    related_ldaps: list[Annotated[int, Field(ge=1, le=MAX_ID)]] | None = Field(
        None, max_length=100, description="ids of LDAP directories (user type)"
    )

    @field_validator("secret_expires_at", mode="before")
    @classmethod
    def _rfc3339(cls, value: Any) -> Any:
        """Only what the schema's date-time format says (RFC 3339: date, time with seconds and
        an offset): not a number, nor another text pydantic's lax mode would read."""
        if value is None:
            return value
        if not isinstance(value, str) or not _RFC3339.fullmatch(value):
            raise PydanticCustomError(
                "date_time", "must be a date and time with its offset, e.g. 2027-01-31T00:00:00Z"
            )
        return value


_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})")


class OAuthClientCreate(OAuthClientBase):
    name: str = Field(..., min_length=1, max_length=200)
    provider: ProviderName
    client_id: str = Field(..., min_length=1, max_length=500)


class OAuthClientPatch(OAuthClientBase):
    """Only the fields sent change; null restores a field's default (empty for most)."""

    name: str | None = Field(None, min_length=1, max_length=200)


class OAuthClientOut(HealthFieldsOut):
    id: int
    name: str
    provider: str
    type: str
    client_id: str
    has_client_secret: bool
    tenant: str
    issuer: str
    scope: str
    authorize_url: str
    token_url: str
    proxy: str
    verify_ssl: bool
    status: str
    scope_separator: str
    userinfo_endpoint: str
    secret_expires_at: datetime | None
    user_data_source: str
    username_attribute: str
    user_fields: dict[str, Any]
    user_create_expression: str
    email_verified_required: bool
    allowed_organizations: list[str]
    login_button_caption: str
    login_button_icon: str
    related_ldaps: list[int]
    redirect_uri: str
    created_at: datetime
    updated_at: datetime
    notice: str = Field(
        "",
        description="On a create or update: what the change did beyond its fields, e.g. the "
        "client secret cleared and the grants to validate again because an endpoint changed.",
    )


class ValidateIn(Schema):
    model_config = ConfigDict(extra="forbid")

    grant: int | None = Field(None, description="a grant of this client; empty: the default")
    login_hint: str = Field(
        "", max_length=320, description="the account to sign in as; another one is refused"
    )


class ValidateOut(Schema):
    authorization_id: int
    authorize_url: str
    expires_at: datetime


class AuthorizationOut(Schema):
    id: int
    client_id: int
    outcome: str
    message: str
    grant_id: int | None
    expires_at: datetime


class HealthOut(Schema):
    status: Literal["ok"]


class HealthViewOut(Schema):
    kind: Literal["grant", "client", "mailbox", "directory"]
    id: int
    name: str
    health: Literal["ok", "warning", "failing", "needs_reauthorization", "disabled"]
    reason: str
    hint: str
    message: str = Field(description="the last error's words, as the peer gave them")
    since: datetime | None
    consecutive_failures: int
    last_success_at: datetime | None
    next_attempt_at: datetime | None


class WorkerOut(Schema):
    name: str
    hostname: str
    pid: int
    started_at: datetime
    beat_at: datetime
    beat_age_seconds: float
    concurrency: int


class StatusOut(Schema):
    health: Literal["ok", "warning", "failing", "needs_reauthorization"]
    reason: str = Field(description="`worker.none_alive` when no worker beats, else empty")
    hint: str
    checked_at: datetime
    counts: dict[str, dict[str, int]] = Field(
        description="kind (grant, client, mailbox, directory) -> health -> number"
    )
    problems: list[HealthViewOut] = Field(description="every object not ok, worst first")
    workers: list[WorkerOut] = Field(description="the workers alive")


class TokenRequest(Input):
    min_valid_seconds: int = Field(0, ge=0, le=86400)


class TokenOut(Schema):
    access_token: str
    token_type: str
    expires_at: datetime | None
    scope: str


class MailboxBase(Input):
    direction: Literal["incoming", "outgoing"] | None = None
    protocol: Literal["imap", "pop3", "smtp"] | None = None
    host: str | None = Field(None, min_length=1, max_length=255)
    port: int | None = Field(None, ge=1, le=65535)
    security: Literal["ssl", "starttls", "none"] | None = None
    username: str | None = Field(None, min_length=1, max_length=320)
    auth_method: Literal["password", "oauth2"] | None = None
    password: str | None = Field(None, max_length=5000, description="write-only")
    oauth_client: int | None = Field(None, ge=1, le=MAX_ID)
    grant: int | None = Field(None, ge=1, le=MAX_ID)
    sasl_mechanism: Literal["xoauth2", "oauthbearer"] | None = None
    smtp_username: str | None = Field(None, max_length=320)
    folder: str | None = Field(None, max_length=500)
    post_fetch_action: str | None = Field(None, max_length=510)
    enabled: bool | None = None
    poll_interval: int | None = Field(None, ge=10, le=86400 * 7)
    push: Literal["poll", "idle"] | None = Field(
        None, description="idle: IMAP IDLE, fetched as mail arrives (and still on the interval)"
    )


class MailboxCreate(MailboxBase):
    name: str = Field(..., min_length=1, max_length=200)
    host: str = Field(..., min_length=1, max_length=255)
    username: str = Field(..., min_length=1, max_length=320)


class MailboxPatch(MailboxBase):
    name: str | None = Field(None, min_length=1, max_length=200)


class MailboxOut(HealthFieldsOut):
    id: int
    name: str
    direction: str
    protocol: str
    host: str
    port: int
    security: str
    username: str
    auth_method: str
    has_password: bool
    oauth_client: int | None
    grant: int | None
    sasl_mechanism: str
    smtp_username: str
    folder: str
    post_fetch_action: str
    enabled: bool
    poll_interval: int
    push: str
    last_fetch_at: datetime | None
    last_success_at: datetime | None
    last_error: str
    notice: str = Field(
        "",
        description="On a create or update: what the change did beyond its fields, e.g. a new "
        "grant to authorize because the server changed.",
    )


class TestOut(Schema):
    ok: bool
    message: str
    capabilities: list[str]
    mechanisms: list[str]
    transcript: str
    details: dict[str, Any] | None
    refreshed: bool


class FetchOut(Schema):
    fetched: int
    bytes: int
    already_stored: int
    resynced: int
    actions: int
    errors: list[str]


class MessageOut(Schema):
    id: int
    mailbox: int = Field(..., alias="mailbox_id")
    folder: str
    uidvalidity: int
    uid: str
    message_id: str
    sender: str = Field(..., serialization_alias="from")
    recipients: str = Field(..., serialization_alias="to")
    subject: str
    date: datetime | None
    size: int
    fetched_at: datetime


class AttachmentIn(Input):
    filename: str = Field(..., min_length=1, max_length=255)
    content_base64: str = Field(..., max_length=50_000_000)
    content_type: str = Field("application/octet-stream", max_length=255)


class SendIn(Input):
    to: list[str] = Field(default_factory=list, max_length=500)
    cc: list[str] = Field(default_factory=list, max_length=500)
    bcc: list[str] = Field(default_factory=list, max_length=500)
    sender: str | None = Field(None, alias="from", max_length=320)
    subject: str = Field("", max_length=998)
    text: str = Field("", max_length=10_000_000)
    html: str = Field("", max_length=10_000_000)
    attachments: list[AttachmentIn] = Field(default_factory=list, max_length=100)
    raw: str | None = Field(
        None, description="a whole RFC 822 message, base64", max_length=70_000_000
    )


class SendOut(Schema):
    accepted: list[str]
    refused: dict[str, str]
    reply: str


def token_body(tokens: TokenSet) -> dict[str, Any]:
    """The broker's answer (TokenOut), on its route, its fast path (api.broker) and the
    command line's --json."""
    return {
        "access_token": tokens.access_token,
        "token_type": tokens.token_type,
        "expires_at": tokens.expiry,
        "scope": tokens.scope,
    }


def started_authorization_out(started: StartedAuthorization) -> dict[str, Any]:
    return {
        "authorization_id": started.pending.pk,
        "authorize_url": started.url,
        "expires_at": started.pending.expires_at,
    }
