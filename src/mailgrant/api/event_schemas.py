"""JSON shapes of events, webhook endpoints and deliveries. An endpoint's signing secret is in
the answer of the call that makes it (create, rotate-secret) and in no other."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from ninja import Field, Schema
from pydantic import AwareDatetime, BeforeValidator, field_validator, model_validator
from pydantic_core import PydanticCustomError

from mailgrant.api.schemas import _RFC3339 as RFC3339
from mailgrant.api.schemas import MAX_ID, HealthFieldsOut, Input
from mailgrant.notify.services.endpoints import RAW_MAX_BYTES_LIMIT

EventTypeName = Annotated[str, Field(min_length=1, max_length=64)]


def _rfc3339_text(value: Any) -> Any:
    """Only what the schema's date-time format says (RFC 3339 with an offset): not a number
    (a Unix time to pydantic's lax mode), nor a time without its zone."""
    if value is not None and (not isinstance(value, str) or not RFC3339.fullmatch(value)):
        raise PydanticCustomError(
            "date_time", "must be a date and time with its offset, e.g. 2027-01-31T00:00:00Z"
        )
    return value


DateTimeText = Annotated[AwareDatetime, BeforeValidator(_rfc3339_text)]
EventUid = Annotated[str, Field(min_length=1, max_length=40)]
Reference = Annotated[int, Field(ge=1, le=MAX_ID)] | Annotated[str, Field(min_length=1)]


class EventOut(Schema):
    """An event as webhooks deliver it (Standard Webhooks payload): `id` is the webhook-id."""

    id: str
    type: str
    version: int
    timestamp: str
    data: dict[str, Any]


class EventsPageOut(Schema):
    events: list[EventOut]
    next: str = Field(description="poll again with after=<next> (always set, even when empty)")
    has_more: bool = Field(description="more events are ready after `next`: ask again at once")


class WebhookBase(Input):
    url: str | None = Field(None, max_length=2000, description="http(s) URL events are POSTed to")
    enabled: bool | None = None
    event_types: list[EventTypeName] | None = Field(
        None, max_length=100, description="types it receives (message.received, grant.*); [] all"
    )
    mailbox: Reference | None = Field(None, description="only this mailbox's events (id or name)")
    client: Reference | None = Field(None, description="only this OAuth client's (id or name)")
    include_raw: bool | None = Field(None, description="message.received carries the raw bytes")
    raw_max_bytes: int | None = Field(None, ge=1, le=RAW_MAX_BYTES_LIMIT)


class WebhookCreate(WebhookBase):
    name: str = Field(min_length=1, max_length=100)
    url: str = Field(min_length=1, max_length=2000)


class WebhookPatch(WebhookBase):
    name: str | None = Field(None, min_length=1, max_length=100)


class WebhookOut(HealthFieldsOut):
    id: int
    name: str
    url: str
    enabled: bool
    event_types: list[str]
    mailbox: int | None
    client: int | None
    include_raw: bool
    raw_max_bytes: int
    has_secret: bool
    disabled_reason: str
    failing_since: datetime | None
    last_success_at: datetime | None
    created_at: datetime
    updated_at: datetime


class WebhookCreatedOut(WebhookOut):
    secret: str = Field(description="the signing secret (whsec_...): shown this once")


class SecretOut(Schema):
    secret: str = Field(description="the new signing secret (whsec_...): shown this once")


class AttemptOut(Schema):
    at: datetime
    status_code: int | None
    duration_ms: int
    response_head: str
    error: str


class DeliveryOut(Schema):
    id: int
    event: str = Field(description="the event's id (its webhook-id)")
    event_type: str
    state: Literal["pending", "delivered", "failed", "cancelled"]
    attempts: int
    next_attempt_at: datetime | None
    created_at: datetime
    delivered_at: datetime | None
    last_status: int | None
    last_error: str
    attempt_log: list[AttemptOut] = Field(description="the latest attempts, newest first")


class RedeliverIn(Input):
    """One delivery by its id, or every delivery of events since a time: exactly one."""

    delivery: int | None = Field(None, ge=1, le=MAX_ID)
    since: datetime | None = Field(
        None,
        strict=False,  # RFC 3339 text in JSON (_rfc3339 checks it first)
        description="every delivery of an event written since then",
    )

    @field_validator("since", mode="before")
    @classmethod
    def _rfc3339(cls, value: Any) -> Any:
        return _rfc3339_text(value)

    @model_validator(mode="after")
    def _one_of(self) -> RedeliverIn:
        if (self.delivery is None) == (self.since is None):
            raise ValueError("give either `delivery` (an id) or `since` (a time), not both")
        return self


class RedeliverOut(Schema):
    redelivered: int = Field(description="how many deliveries are due again")
