"""An admin session on the API holds the rights of its Django permissions, route by route: a
staff user without permissions is refused everywhere with a 403 naming the one missing, exactly
that permission lets the call through, and a superuser may do everything. API keys keep their
scopes (tests/api/test_clients.py, test_grants.py)."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.test import Client

from mailgrant.api.routers import grants as grant_routes
from mailgrant.api.routers import status as status_routes
from mailgrant.common.models import AuditEvent
from mailgrant.oauth.models import Grant

pytestmark = pytest.mark.django_db

User = get_user_model()
ACCESS_TOKEN = "canary-session-access-token-71b3"

# What an admin session needs for each operation of the API, but the public health probe.
NEEDS = {
    ("GET", "/oauth-clients"): "oauth.view_oauthclient",
    ("POST", "/oauth-clients"): "oauth.add_oauthclient",
    ("GET", "/oauth-clients/{client_id}"): "oauth.view_oauthclient",
    ("PATCH", "/oauth-clients/{client_id}"): "oauth.change_oauthclient",
    ("DELETE", "/oauth-clients/{client_id}"): "oauth.delete_oauthclient",
    ("POST", "/oauth-clients/{client_id}/validate"): "oauth.change_oauthclient",
    ("POST", "/oauth-clients/{client_id}/refresh"): "oauth.change_grant",
    ("GET", "/oauth-clients/{client_id}/grants"): "oauth.view_grant",
    ("GET", "/authorizations/{authorization_id}"): "oauth.view_pendingauthorization",
    ("POST", "/grants/{grant_id}/access-token"): "oauth.issue_token",
    ("GET", "/grants"): "oauth.view_grant",
    ("GET", "/grants/{grant_id}"): "oauth.view_grant",
    ("POST", "/grants/{grant_id}/refresh"): "oauth.change_grant",
    ("POST", "/grants/{grant_id}/default"): "oauth.change_grant",
    ("DELETE", "/grants/{grant_id}"): "oauth.delete_grant",
    ("GET", "/mailboxes"): "mailboxes.view_mailbox",
    ("POST", "/mailboxes"): "mailboxes.add_mailbox",
    ("GET", "/mailboxes/{mailbox_id}"): "mailboxes.view_mailbox",
    ("PATCH", "/mailboxes/{mailbox_id}"): "mailboxes.change_mailbox",
    ("DELETE", "/mailboxes/{mailbox_id}"): "mailboxes.delete_mailbox",
    ("POST", "/mailboxes/{mailbox_id}/authorize"): "mailboxes.change_mailbox",
    ("POST", "/mailboxes/{mailbox_id}/test"): "mailboxes.change_mailbox",
    ("POST", "/mailboxes/{mailbox_id}/fetch"): "mailboxes.change_mailbox",
    ("GET", "/mailboxes/{mailbox_id}/messages"): "mailboxes.view_message",
    ("POST", "/mailboxes/{mailbox_id}/send"): "mailboxes.send_message",
    ("GET", "/messages/{message_id}/raw"): "mailboxes.view_message",
    ("GET", "/alerts/channels"): "notify.view_notificationchannel",
    ("POST", "/alerts/channels"): "notify.add_notificationchannel",
    ("GET", "/alerts/channels/{channel_id}"): "notify.view_notificationchannel",
    ("PATCH", "/alerts/channels/{channel_id}"): "notify.change_notificationchannel",
    ("DELETE", "/alerts/channels/{channel_id}"): "notify.delete_notificationchannel",
    ("POST", "/alerts/channels/{channel_id}/test"): "notify.change_notificationchannel",
    ("GET", "/incidents"): "notify.view_incident",
    ("GET", "/events"): "common.view_event",
    ("GET", "/events/{uid}"): "common.view_event",
    ("GET", "/webhooks"): "notify.view_webhookendpoint",
    ("POST", "/webhooks"): "notify.add_webhookendpoint",
    ("GET", "/webhooks/{webhook_id}"): "notify.view_webhookendpoint",
    ("PATCH", "/webhooks/{webhook_id}"): "notify.change_webhookendpoint",
    ("DELETE", "/webhooks/{webhook_id}"): "notify.delete_webhookendpoint",
    ("POST", "/webhooks/{webhook_id}/rotate-secret"): "notify.change_webhookendpoint",
    ("POST", "/webhooks/{webhook_id}/test"): "notify.change_webhookendpoint",
    ("GET", "/webhooks/{webhook_id}/deliveries"): "notify.view_delivery",
    ("POST", "/webhooks/{webhook_id}/redeliver"): "notify.change_delivery",
}
# Operations that need several permissions, each of them.
NEEDS_EACH = {("GET", "/status"): status_routes.VIEW_ALL}
PUBLIC = {("GET", "/health")}
NO_SUCH_ID = "987654321"  # the calls that get through find nothing: no peer is reached


def operations() -> list[tuple[str, str]]:
    """Every operation the OpenAPI document lists, as (method, path below /api/v1)."""
    schema = Client().get("/api/v1/openapi.json").json()
    return sorted(
        (method.upper(), path.removeprefix("/api/v1"))
        for path, item in schema["paths"].items()
        for method in item
        if method in {"get", "post", "put", "patch", "delete"}
    )


def call(browser: Client, method: str, path: str) -> Any:
    concrete = re.sub(r"\{[^}]+\}", NO_SUCH_ID, path)
    return getattr(browser, method.lower())(f"/api/v1{concrete}")


def permission(name: str) -> Permission:
    app_label, codename = name.split(".")
    return Permission.objects.get(content_type__app_label=app_label, codename=codename)


def session_of(user: Any) -> Client:
    browser = Client()
    browser.force_login(user)
    return browser


@pytest.fixture
def staff() -> Any:
    return User.objects.create_user("helpdesk", "helpdesk@example.test", "pw", is_staff=True)


def test_every_operation_is_mapped_to_a_permission_that_exists() -> None:
    assert set(operations()) == set(NEEDS) | set(NEEDS_EACH) | PUBLIC
    for name in {*NEEDS.values(), *(n for names in NEEDS_EACH.values() for n in names)}:
        assert permission(name)  # declared (custom ones in their model's Meta)


@pytest.mark.parametrize(("method", "path"), sorted(NEEDS_EACH))
def test_an_operation_needing_several_permissions_needs_each(
    staff: Any, method: str, path: str
) -> None:
    needed = NEEDS_EACH[(method, path)]
    for missing in needed:
        staff.user_permissions.set([permission(n) for n in needed if n != missing])
        response = call(session_of(staff), method, path)
        assert response.status_code == 403, (missing, response.content)
        assert repr(missing) in response.json()["message"]
    staff.user_permissions.set([permission(n) for n in needed])
    assert call(session_of(staff), method, path).status_code == 200


@pytest.mark.parametrize(("method", "path"), sorted(NEEDS))
def test_a_staff_user_without_the_permission_is_refused_naming_it(
    staff: Any, method: str, path: str
) -> None:
    needed = NEEDS[(method, path)]
    response = call(session_of(staff), method, path)
    assert response.status_code == 403, response.content
    body = response.json()
    assert body["code"] == "forbidden" and repr(needed) in body["message"]

    # Every other permission there is does not stand in for it.
    staff.user_permissions.set(Permission.objects.exclude(pk=permission(needed).pk))
    response = call(session_of(staff), method, path)
    assert response.status_code == 403 and repr(needed) in response.json()["message"]
    assert not AuditEvent.objects.exists()


@pytest.mark.parametrize(("method", "path"), sorted(NEEDS))
def test_exactly_the_permission_lets_a_staff_user_through(
    staff: Any, method: str, path: str
) -> None:
    staff.user_permissions.set([permission(NEEDS[(method, path)])])
    response = call(session_of(staff), method, path)
    # Past authentication: the route answers (no such object, or the input it lacks).
    assert response.status_code in (200, 400, 404), response.content


def test_a_superuser_may_call_every_operation() -> None:
    admin = User.objects.create_superuser("root", "root@example.test", "pw")
    browser = session_of(admin)
    for method, path in [*NEEDS, *NEEDS_EACH]:
        response = call(browser, method, path)
        assert response.status_code in (200, 400, 404), (method, path, response.content)


def test_a_user_who_is_not_staff_has_no_session_on_the_api() -> None:
    person = User.objects.create_user("person", "person@example.test", "pw")
    person.user_permissions.set([permission("oauth.view_oauthclient")])
    assert session_of(person).get("/api/v1/oauth-clients").status_code == 401


def test_a_permission_holder_reads_what_it_may_and_nothing_beside(staff: Any) -> None:
    staff.user_permissions.set([permission("oauth.view_oauthclient")])
    browser = session_of(staff)
    assert browser.get("/api/v1/oauth-clients").status_code == 200
    refused = browser.get("/api/v1/grants")
    assert refused.status_code == 403
    assert "'oauth.view_grant'" in refused.json()["message"]


# --- the token broker: its fast path answers keys only, and the route checks the permission -----


@pytest.fixture
def grant(make_client: Any, make_grant: Any) -> Grant:
    """A grant whose token is good for an hour: the call the fast path would answer."""
    return make_grant(make_client(name="helpdesk"), access_token=ACCESS_TOKEN)


def issued() -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(action="grant.token_issued"))


@pytest.mark.parametrize("query", ["", "?min_valid_seconds=60"])
def test_the_broker_needs_issue_token_for_a_session(staff: Any, grant: Grant, query: str) -> None:
    staff.user_permissions.set(Permission.objects.exclude(codename="issue_token"))
    url = f"/api/v1/grants/{grant.pk}/access-token{query}"
    refused = session_of(staff).post(url)
    assert refused.status_code == 403
    assert "'oauth.issue_token'" in refused.json()["message"]
    assert ACCESS_TOKEN not in refused.content.decode() and issued() == []

    staff.user_permissions.add(permission("oauth.issue_token"))
    allowed = session_of(staff).post(url)
    assert allowed.status_code == 200 and allowed.json()["access_token"] == ACCESS_TOKEN
    (event,) = issued()
    assert (event.actor, event.user) == ("user:helpdesk", staff)


def test_a_session_cannot_borrow_the_fast_path(
    staff: Any, grant: Grant, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A session with a key that is not one (or a key without the tokens scope) gets neither the
    fast path's answer nor the session's: the key named is who calls."""
    staff.user_permissions.set([permission("oauth.issue_token")])
    reached: list[int] = []
    real = grant_routes.access_token_issue

    def counted(**kwargs: Any) -> Any:
        reached.append(kwargs["grant_id"])
        return real(**kwargs)

    monkeypatch.setattr(grant_routes, "access_token_issue", counted)
    browser = session_of(staff)
    url = f"/api/v1/grants/{grant.pk}/access-token"
    assert browser.post(url, headers={"Authorization": "Bearer mgk_made-up"}).status_code == 401
    assert reached == [] and issued() == []
    assert browser.post(url).status_code == 200  # the session alone goes through the route
    assert reached == [grant.pk]
