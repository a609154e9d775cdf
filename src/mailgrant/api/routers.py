"""Thin routes: parse, call the same services the admin uses, map the outcome."""

import base64
import binascii
from datetime import UTC, datetime
from typing import Any, TypeVar

from django.db import models
from django.http import FileResponse, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404
from ninja import Query, Router, Schema, Status
from ninja.errors import ValidationError as NinjaValidationError
from ninja.pagination import paginate
from pydantic import ValidationError as PydanticValidationError

from mailgrant.api.auth import principal_of, scope
from mailgrant.api.errors import PEER, ApiError, answers
from mailgrant.api.schemas import (
    AuthorizationOut,
    ClientStatus,
    ClientType,
    FetchOut,
    GrantOut,
    HealthOut,
    MailboxCreate,
    MailboxOut,
    MailboxPatch,
    MessageOut,
    OAuthClientCreate,
    OAuthClientOut,
    OAuthClientPatch,
    ObjectId,
    Pagination,
    ProviderName,
    SendIn,
    SendOut,
    TestOut,
    TokenOut,
    TokenRequest,
    ValidateIn,
    ValidateOut,
)
from mailgrant.common.audit import Actor
from mailgrant.mailboxes.models import Mailbox, Message
from mailgrant.mailboxes.services import (
    Attachment,
    compose,
    mailbox_authorize_start,
    mailbox_delete,
    mailbox_fetch,
    mailbox_save,
    mailbox_send,
    mailbox_test,
    store_root,
)
from mailgrant.oauth.client import TokenSet
from mailgrant.oauth.models import Grant, OAuthClient, PendingAuthorization
from mailgrant.oauth.selectors import grant_list, oauth_client_list, oauth_client_public
from mailgrant.oauth.services import (
    StartedAuthorization,
    access_token_issue,
    authorization_start,
    grant_delete,
    grant_refresh,
    grant_set_default,
    oauth_client_delete,
    oauth_client_save,
)
from mailgrant.sso.models import LdapDirectory

health = Router(tags=["service"])
clients = Router(tags=["oauth-clients"])
grants = Router(tags=["grants"])
authorizations = Router(tags=["oauth-clients"])
mailboxes = Router(tags=["mailboxes"])
messages = Router(tags=["mailboxes"])

BodyT = TypeVar("BodyT", bound=Schema)

NO_STORE = {"Cache-Control": "no-store"}


def _user(request: HttpRequest) -> Any:
    """Who the services record: the admin signed in, else the API key (`apikey:<name>`)."""
    principal = principal_of(request)
    return principal.user or Actor(principal.actor)


def _actor(request: HttpRequest) -> str:
    return principal_of(request).actor


def _optional_body(request: HttpRequest, schema: type[BodyT]) -> BodyT | None:
    """The JSON body as `schema`, or None when the request has none (an empty POST is fine)."""
    if request.content_type != "application/json" or not request.body.strip():
        return None
    try:
        return schema.model_validate_json(request.body)
    except PydanticValidationError as exc:
        raise NinjaValidationError([dict(e) for e in exc.errors()]) from None


@health.get("", response=HealthOut, auth=None)
def service_health(request: HttpRequest, response: HttpResponse) -> Any:
    """For monitoring probes: the service answers. No key needed, nothing about the
    configuration or the data is said, and the database is not touched (a cheap liveness check)."""
    response["Cache-Control"] = "no-store"
    return {"status": "ok"}


# --- OAuth clients ---------------------------------------------------------------------------


def _default(model: type[OAuthClient], field: str) -> Any:
    found = model._meta.get_field(field)
    return found.get_default() if isinstance(found, models.Field) else None


def _client_out(client: OAuthClient) -> dict[str, Any]:
    return oauth_client_public(client=client)


@clients.get("", response=answers({200: list[OAuthClientOut]}), auth=scope("read"))
@paginate(Pagination)
def list_clients(
    request: HttpRequest,
    provider: ProviderName | None = None,
    type: ClientType | None = None,
    status: ClientStatus | None = None,
) -> Any:
    return [_client_out(c) for c in oauth_client_list(provider=provider, type=type, status=status)]


@clients.post("", response=answers({201: OAuthClientOut}, 409), auth=scope("write"))
def create_client(request: HttpRequest, body: OAuthClientCreate) -> Any:
    data = body.model_dump(exclude_none=True)
    secret = data.pop("client_secret", None)
    directories = _directories(data.pop("related_ldaps", None))
    if OAuthClient.objects.filter(name=data["name"]).exists():
        raise ApiError(409, "conflict", f"An OAuth client named {data['name']!r} exists.")
    client = OAuthClient(**data)
    client.full_clean(exclude=["client_secret", "metadata"])
    saved = oauth_client_save(
        client=client, client_secret=secret, related_ldaps=directories, user=_user(request)
    )
    return Status(201, _client_out(saved))


@clients.get("/{client_id}", response=answers({200: OAuthClientOut}, 404), auth=scope("read"))
def get_client(request: HttpRequest, client_id: ObjectId) -> Any:
    return _client_out(get_object_or_404(OAuthClient, pk=client_id))


@clients.patch(
    "/{client_id}", response=answers({200: OAuthClientOut}, 404, 409), auth=scope("write")
)
def update_client(request: HttpRequest, client_id: ObjectId, body: OAuthClientPatch) -> Any:
    client = get_object_or_404(OAuthClient, pk=client_id)
    data = body.model_dump(exclude_unset=True)
    secret = data.pop("client_secret", None)
    directories = _directories(data.pop("related_ldaps", None)) if "related_ldaps" in data else None
    for field, value in data.items():
        # null clears a field: its default ({} for user fields), never a value of another type
        setattr(client, field, value if value is not None else _default(OAuthClient, field))
    if (
        "name" in data
        and OAuthClient.objects.filter(name=client.name).exclude(pk=client.pk).exists()
    ):
        raise ApiError(409, "conflict", f"An OAuth client named {client.name!r} exists.")
    client.full_clean(exclude=["client_secret", "metadata"])
    saved = oauth_client_save(
        client=client, client_secret=secret, related_ldaps=directories, user=_user(request)
    )
    return _client_out(saved)


def _directories(ids: list[int] | None) -> list[LdapDirectory]:
    """The LDAP directories a client names (null or absent: none); an unknown id is a 400."""
    wanted = set(ids or ())
    found = list(LdapDirectory.objects.filter(pk__in=wanted))
    missing = sorted(wanted - {d.pk for d in found})
    if missing:
        message = f"No LDAP directory with id {missing[0]}."
        raise ApiError(
            400,
            "validation_error",
            f"related_ldaps: {message}",
            fields=[{"field": "related_ldaps", "message": message}],
        )
    return found


@clients.delete("/{client_id}", response=answers({204: None}, 404, 409), auth=scope("write"))
def delete_client(request: HttpRequest, client_id: ObjectId) -> Any:
    client = get_object_or_404(OAuthClient, pk=client_id)
    oauth_client_delete(client=client, user=_user(request))
    return Status(204, None)


@clients.post(
    "/{client_id}/validate",
    response=answers({201: ValidateOut}, 404, *PEER),
    auth=scope("write"),
)
def validate_client(request: HttpRequest, client_id: ObjectId) -> Any:
    """Start a Validate that completes in any browser. An empty body validates the default
    grant; a JSON body may name another of this client's grants (`grant`) and preselect the
    account (`login_hint`)."""
    client = get_object_or_404(OAuthClient, pk=client_id)
    body = _optional_body(request, ValidateIn)
    grant_id = body.grant if body else None
    grant = get_object_or_404(Grant, pk=grant_id, client=client) if grant_id else None
    started = authorization_start(
        client=client,
        purpose="api",
        user=_user(request),
        grant=grant,
        login_hint=body.login_hint if body else "",
    )
    return Status(201, _started_out(started))


def _started_out(started: StartedAuthorization) -> dict[str, Any]:
    return {
        "authorization_id": started.pending.pk,
        "authorize_url": started.url,
        "expires_at": started.pending.expires_at,
    }


@clients.post(
    "/{client_id}/refresh", response=answers({200: GrantOut}, 404, *PEER), auth=scope("write")
)
def refresh_client(request: HttpRequest, client_id: ObjectId) -> Any:
    grant = get_object_or_404(Grant, client_id=client_id, is_default=True)
    return grant_refresh(grant=grant, user=_user(request))


@clients.get(
    "/{client_id}/grants", response=answers({200: list[GrantOut]}, 404), auth=scope("read")
)
def list_grants(request: HttpRequest, client_id: ObjectId) -> Any:
    client = get_object_or_404(OAuthClient, pk=client_id)
    return list(grant_list(client=client))


@authorizations.get(
    "/{authorization_id}", response=answers({200: AuthorizationOut}, 404), auth=scope("read")
)
def get_authorization(request: HttpRequest, authorization_id: ObjectId) -> Any:
    pending = get_object_or_404(PendingAuthorization, pk=authorization_id)
    return {
        "id": pending.pk,
        "client_id": pending.client_id,
        "outcome": pending.outcome,
        "message": pending.message,
        "grant_id": pending.result_grant_id,
        "expires_at": pending.expires_at,
    }


# --- the token broker ------------------------------------------------------------------------


@grants.post(
    "/{grant_id}/access-token",
    response=answers({200: TokenOut}, 404, *PEER),
    auth=scope("tokens"),
)
def broker(
    request: HttpRequest,
    grant_id: ObjectId,
    response: HttpResponse,
    min_valid_seconds: int = Query(0, ge=0, le=86400),
) -> Any:
    """A valid access token of the grant, refreshed if it expires within `min_valid_seconds`
    (query string, or a JSON body `{"min_valid_seconds": N}`; an empty body is fine)."""
    body = _optional_body(request, TokenRequest)
    if body is not None:
        min_valid_seconds = body.min_valid_seconds
    tokens = access_token_issue(
        grant_id=grant_id,
        min_valid_seconds=min_valid_seconds,
        actor=_actor(request),
        user=_user(request),
    )
    response["Cache-Control"] = "no-store"
    return token_body(tokens)


def token_body(tokens: TokenSet) -> dict[str, Any]:
    """The broker's answer (TokenOut), here and on its fast path (api.broker)."""
    return {
        "access_token": tokens.access_token,
        "token_type": tokens.token_type,
        "expires_at": datetime.fromtimestamp(tokens.expires_at, tz=UTC)
        if tokens.expires_at
        else None,
        "scope": tokens.scope,
    }


@grants.get("", response=answers({200: list[GrantOut]}, 404), auth=scope("read"))
@paginate(Pagination)
def list_all_grants(request: HttpRequest, client_id: ObjectId | None = None) -> Any:
    client = get_object_or_404(OAuthClient, pk=client_id) if client_id is not None else None
    return grant_list(client=client)


@grants.get("/{grant_id}", response=answers({200: GrantOut}, 404), auth=scope("read"))
def get_grant(request: HttpRequest, grant_id: ObjectId) -> Any:
    return get_object_or_404(Grant, pk=grant_id)


@grants.post(
    "/{grant_id}/refresh", response=answers({200: GrantOut}, 404, *PEER), auth=scope("write")
)
def refresh_grant(request: HttpRequest, grant_id: ObjectId) -> Any:
    return grant_refresh(grant=get_object_or_404(Grant, pk=grant_id), user=_user(request))


@grants.post("/{grant_id}/default", response=answers({200: GrantOut}, 404), auth=scope("write"))
def set_default_grant(request: HttpRequest, grant_id: ObjectId) -> Any:
    """Make this grant the one its client uses wherever no grant is named."""
    return grant_set_default(grant=get_object_or_404(Grant, pk=grant_id), user=_user(request))


@grants.delete("/{grant_id}", response=answers({204: None}, 404, 409), auth=scope("write"))
def delete_grant(request: HttpRequest, grant_id: ObjectId) -> Any:
    grant_delete(grant=get_object_or_404(Grant, pk=grant_id), user=_user(request))
    return Status(204, None)


# --- mailboxes -------------------------------------------------------------------------------


def _mailbox_out(mailbox: Mailbox) -> dict[str, Any]:
    data = {
        f: getattr(mailbox, f)
        for f in MailboxOut.model_fields
        if hasattr(mailbox, f) and f not in ("oauth_client", "grant")
    }
    data.update(
        id=mailbox.pk,
        has_password=bool(mailbox.password),
        oauth_client=mailbox.oauth_client_id,
        grant=mailbox.grant_id,
    )
    return data


def _referenced(model: type[OAuthClient] | type[Grant], pk: int, field: str) -> Any:
    """The object a request body points to; a dangling id is bad input (400), not a missing
    page (404)."""
    found = model.objects.filter(pk=pk).first()
    if found is None:
        message = f"No {model._meta.verbose_name} with id {pk}."
        raise ApiError(
            400,
            "validation_error",
            f"{field}: {message}",
            fields=[{"field": field, "message": message}],
        )
    return found


def _apply_mailbox(mailbox: Mailbox, data: dict[str, Any]) -> str | None:
    password = data.pop("password", None)
    if "oauth_client" in data:
        value = data.pop("oauth_client")
        mailbox.oauth_client = _referenced(OAuthClient, value, "oauth_client") if value else None
    if "grant" in data:
        value = data.pop("grant")
        mailbox.grant = _referenced(Grant, value, "grant") if value else None
    for field, value in data.items():
        setattr(mailbox, field, value)
    mailbox.full_clean(exclude=["password"])
    return password


@mailboxes.get("", response=answers({200: list[MailboxOut]}), auth=scope("read"))
@paginate(Pagination)
def list_mailboxes(request: HttpRequest) -> Any:
    return [_mailbox_out(m) for m in Mailbox.objects.all()]


@mailboxes.post("", response=answers({201: MailboxOut}, 409), auth=scope("write"))
def create_mailbox(request: HttpRequest, body: MailboxCreate) -> Any:
    data = body.model_dump(exclude_none=True)
    if Mailbox.objects.filter(name=data["name"]).exists():
        raise ApiError(409, "conflict", f"A mailbox named {data['name']!r} exists.")
    mailbox = Mailbox()
    password = _apply_mailbox(mailbox, data)
    saved = mailbox_save(mailbox=mailbox, password=password, user=_user(request))
    return Status(201, _mailbox_out(saved))


@mailboxes.get("/{mailbox_id}", response=answers({200: MailboxOut}, 404), auth=scope("read"))
def get_mailbox(request: HttpRequest, mailbox_id: ObjectId) -> Any:
    return _mailbox_out(get_object_or_404(Mailbox, pk=mailbox_id))


@mailboxes.patch(
    "/{mailbox_id}", response=answers({200: MailboxOut}, 404, 409), auth=scope("write")
)
def update_mailbox(request: HttpRequest, mailbox_id: ObjectId, body: MailboxPatch) -> Any:
    mailbox = get_object_or_404(Mailbox, pk=mailbox_id)
    data = body.model_dump(exclude_unset=True)
    if (
        data.get("name")
        and Mailbox.objects.filter(name=data["name"]).exclude(pk=mailbox.pk).exists()
    ):
        raise ApiError(409, "conflict", f"A mailbox named {data['name']!r} exists.")
    password = _apply_mailbox(mailbox, data)
    return _mailbox_out(mailbox_save(mailbox=mailbox, password=password, user=_user(request)))


@mailboxes.delete("/{mailbox_id}", response=answers({204: None}, 404, 409), auth=scope("write"))
def delete_mailbox(request: HttpRequest, mailbox_id: ObjectId) -> Any:
    mailbox_delete(mailbox=get_object_or_404(Mailbox, pk=mailbox_id), user=_user(request))
    return Status(204, None)


@mailboxes.post(
    "/{mailbox_id}/authorize", response=answers({201: ValidateOut}, 404, *PEER), auth=scope("write")
)
def authorize_mailbox(request: HttpRequest, mailbox_id: ObjectId) -> Any:
    """Validate the mailbox's own account (a grant of its client, its address as login hint);
    completes in any browser, polled like a client's Validate."""
    mailbox = get_object_or_404(Mailbox.objects.select_related("grant"), pk=mailbox_id)
    started = mailbox_authorize_start(mailbox=mailbox, user=_user(request), purpose="api")
    return Status(201, _started_out(started))


@mailboxes.post(
    "/{mailbox_id}/test", response=answers({200: TestOut}, 404, *PEER), auth=scope("write")
)
def test_mailbox(request: HttpRequest, mailbox_id: ObjectId) -> Any:
    result = mailbox_test(mailbox=get_object_or_404(Mailbox, pk=mailbox_id), user=_user(request))
    return {
        **result.__dict__,
        "capabilities": list(result.capabilities),
        "mechanisms": list(result.mechanisms),
    }


@mailboxes.post(
    "/{mailbox_id}/fetch", response=answers({200: FetchOut}, 404, *PEER), auth=scope("write")
)
def fetch_mailbox(request: HttpRequest, mailbox_id: ObjectId) -> Any:
    return mailbox_fetch(mailbox=get_object_or_404(Mailbox, pk=mailbox_id), user=_user(request))


@mailboxes.get(
    "/{mailbox_id}/messages",
    response=answers({200: list[MessageOut]}, 404),
    auth=scope("read"),
    by_alias=True,
)
@paginate(Pagination)
def list_messages(request: HttpRequest, mailbox_id: ObjectId) -> Any:
    mailbox = get_object_or_404(Mailbox, pk=mailbox_id)
    return Message.objects.filter(mailbox=mailbox).order_by("-fetched_at", "-id")


@mailboxes.post(
    "/{mailbox_id}/send", response=answers({200: SendOut}, 404, *PEER), auth=scope("write")
)
def send_mailbox(request: HttpRequest, mailbox_id: ObjectId, body: SendIn) -> Any:
    mailbox = get_object_or_404(Mailbox, pk=mailbox_id)
    recipients = [*body.to, *body.cc, *body.bcc]
    try:
        if body.raw:
            raw = base64.b64decode(body.raw, validate=True)
        else:
            attachments = [
                Attachment(
                    a.filename, base64.b64decode(a.content_base64, validate=True), a.content_type
                )
                for a in body.attachments
            ]
            raw = compose(
                sender=body.sender or mailbox.username,
                to=body.to,
                cc=body.cc,
                subject=body.subject,
                text=body.text,
                html=body.html,
                attachments=attachments,
            ).as_bytes()
    except (binascii.Error, ValueError) as exc:
        raise ApiError(
            400,
            "validation_error",
            f"Not a valid message or attachment: {exc}",
            fields=[{"field": "raw" if body.raw else "attachments", "message": "base64 expected"}],
        ) from None
    result = mailbox_send(
        mailbox=mailbox, recipients=recipients, raw=raw, sender=body.sender, user=_user(request)
    )
    return {"accepted": result.accepted, "refused": result.refused, "reply": result.reply}


@messages.get(
    "/{message_id}/raw",
    auth=scope("read"),
    response=answers({200: None}, 404),
    openapi_extra={
        "responses": {
            200: {
                "description": "The message as fetched (RFC 822 bytes)",
                "content": {"message/rfc822": {"schema": {"type": "string", "format": "binary"}}},
            }
        }
    },
)
def message_raw(request: HttpRequest, message_id: ObjectId) -> Any:
    message = get_object_or_404(Message, pk=message_id)
    path = store_root() / message.path
    if not path.is_file():
        raise ApiError(404, "not_found", "The message's file is missing from the store.")
    response = FileResponse(path.open("rb"), content_type="message/rfc822")
    response["Content-Disposition"] = f'attachment; filename="message-{message.pk}.eml"'
    return response
