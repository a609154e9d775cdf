"""/alerts/channels: who is told of incidents, and how; /incidents: what needed (or needs) a
person."""

from datetime import datetime
from typing import Any, Literal

from django.http import HttpRequest
from django.shortcuts import get_object_or_404
from ninja import Field, Router, Schema, Status
from ninja.pagination import paginate

from mailgrant.api.auth import scope
from mailgrant.api.errors import PEER, answers
from mailgrant.api.inputs import request_actor
from mailgrant.api.schemas import ObjectId, Pagination
from mailgrant.notify.alerts.channels import (
    notification_channel_create,
    notification_channel_delete,
    notification_channel_test,
    notification_channel_update,
)
from mailgrant.notify.alerts.selectors import channel_values, channels_list
from mailgrant.notify.models import ALERT_HEALTHS, ALERT_KINDS, Incident, NotificationChannel

router = Router(tags=["alerts"])
incidents_router = Router(tags=["alerts"])

AlertHealth = Literal["failing", "needs_reauthorization"]
AlertKind = Literal["grant", "mailbox", "client", "directory", "webhook"]
# A mailbox, endpoint or client by its id or its name.
Named = int | str


def _all_healths() -> list[AlertHealth]:
    return list(ALERT_HEALTHS)  # type: ignore[arg-type]


def _all_kinds() -> list[AlertKind]:
    return list(ALERT_KINDS)  # type: ignore[arg-type]


class ChannelOut(Schema):
    id: int
    name: str
    kind: Literal["email", "webhook"]
    enabled: bool
    recipients: list[str]
    mailbox: str | None
    endpoint: str | None
    healths: list[AlertHealth]
    subject_kinds: list[AlertKind]
    only_mailbox: str | None
    only_client: str | None


class ChannelCreate(Schema):
    name: str = Field(..., max_length=100)
    kind: Literal["email", "webhook"] = "email"
    enabled: bool = True
    recipients: list[str] = Field(default_factory=list, max_length=100)
    mailbox: Named | None = None
    endpoint: Named | None = None
    healths: list[AlertHealth] = Field(default_factory=_all_healths)
    subject_kinds: list[AlertKind] = Field(default_factory=_all_kinds)
    only_mailbox: Named | None = None
    only_client: Named | None = None


class ChannelPatch(Schema):
    name: str | None = Field(None, max_length=100)
    kind: Literal["email", "webhook"] | None = None
    enabled: bool | None = None
    recipients: list[str] | None = Field(None, max_length=100)
    mailbox: Named | None = None
    endpoint: Named | None = None
    healths: list[AlertHealth] | None = None
    subject_kinds: list[AlertKind] | None = None
    only_mailbox: Named | None = None
    only_client: Named | None = None


class ChannelTestOut(Schema):
    state: str


class IncidentOut(Schema):
    id: int
    kind: str
    object_type: str
    object_id: str
    name: str
    health: str
    reason: str
    hint: str
    url: str
    since: datetime | None
    opened_at: datetime
    last_notice_at: datetime
    reminders: int
    resolved_at: datetime | None
    resolution: str

    @staticmethod
    def resolve_kind(obj: Incident) -> str:
        return obj.subject_kind

    @staticmethod
    def resolve_object_type(obj: Incident) -> str:
        return obj.subject_type

    @staticmethod
    def resolve_object_id(obj: Incident) -> str:
        return obj.subject_id

    @staticmethod
    def resolve_name(obj: Incident) -> str:
        return obj.subject_name


def _channel(channel_id: int) -> NotificationChannel:
    return get_object_or_404(
        NotificationChannel.objects.select_related(
            "mailbox", "endpoint", "only_mailbox", "only_client"
        ),
        pk=channel_id,
    )


@router.get(
    "/channels",
    response=answers({200: list[ChannelOut]}),
    auth=scope("read", perm="notify.view_notificationchannel"),
)
@paginate(Pagination)
def list_channels(request: HttpRequest) -> Any:
    return [channel_values(c) for c in channels_list()]


@router.post(
    "/channels",
    response=answers({201: ChannelOut}, 409),
    auth=scope("write", perm="notify.add_notificationchannel"),
)
def create_channel(request: HttpRequest, body: ChannelCreate) -> Any:
    channel = notification_channel_create(**body.model_dump(), actor=request_actor(request))
    return Status(201, channel_values(channel))


@router.get(
    "/channels/{channel_id}",
    response=answers({200: ChannelOut}, 404),
    auth=scope("read", perm="notify.view_notificationchannel"),
)
def get_channel(request: HttpRequest, channel_id: ObjectId) -> Any:
    return channel_values(_channel(channel_id))


@router.patch(
    "/channels/{channel_id}",
    response=answers({200: ChannelOut}, 404, 409),
    auth=scope("write", perm="notify.change_notificationchannel"),
)
def update_channel(request: HttpRequest, channel_id: ObjectId, body: ChannelPatch) -> Any:
    """Change the fields sent (null clears a mailbox, endpoint or filter)."""
    updated = notification_channel_update(
        channel=_channel(channel_id),
        changes=body.model_dump(exclude_unset=True),
        actor=request_actor(request),
    )
    return channel_values(_channel(updated.pk))


@router.delete(
    "/channels/{channel_id}",
    response=answers({204: None}, 404),
    auth=scope("write", perm="notify.delete_notificationchannel"),
)
def delete_channel(request: HttpRequest, channel_id: ObjectId) -> Any:
    notification_channel_delete(channel=_channel(channel_id), actor=request_actor(request))
    return Status(204, None)


@router.post(
    "/channels/{channel_id}/test",
    response=answers({200: ChannelTestOut}, 404, *PEER),
    auth=scope("write", perm="notify.change_notificationchannel"),
)
def test_channel(request: HttpRequest, channel_id: ObjectId) -> Any:
    """Send a test notice now (an email, or a webhook.test event to the endpoint)."""
    notice = notification_channel_test(channel=_channel(channel_id), actor=request_actor(request))
    return {"state": notice.state}


@incidents_router.get(
    "",
    response=answers({200: list[IncidentOut]}),
    auth=scope("read", perm="notify.view_incident"),
)
@paginate(Pagination)
def list_incidents(request: HttpRequest, open: bool | None = None) -> Any:
    """Newest first; `open=true` only those still going on, `open=false` only the resolved."""
    incidents = Incident.objects.all()
    if open is not None:
        incidents = incidents.filter(resolved_at__isnull=open)
    return incidents
