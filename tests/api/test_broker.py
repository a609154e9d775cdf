"""The token broker's fast path (api.broker) answers the common call exactly as its API route
did, and leaves every other call to the route: the same checks, errors, audit rows and
headers either way."""

from datetime import timedelta

import pytest
from django.test import Client
from django.urls import resolve
from django.utils import timezone

from mailgrant.api.models import ApiKey
from mailgrant.api.routers import grants as grant_routes
from mailgrant.api.services import LAST_USED_PRECISION, apikey_revoke
from mailgrant.common.models import AuditEvent
from mailgrant.oauth.models import Grant, OAuthClient
from mailgrant.oauth.protocol import TokenSet
from mailgrant.oauth.services.clients import oauth_client_set_status

pytestmark = pytest.mark.django_db

ACCESS_TOKEN = "canary-broker-access-token-5e1d"


@pytest.fixture
def grant(make_client, make_grant) -> Grant:
    """A grant whose token is good for an hour: no provider is needed to hand it out."""
    return make_grant(make_client(name="helpdesk"), access_token=ACCESS_TOKEN)


@pytest.fixture
def route_only(monkeypatch):
    """Fail if the API route's service is reached: what is answered came from the fast path."""

    def refuse(**kwargs):
        raise AssertionError("the API route answered, not the fast path")

    monkeypatch.setattr(grant_routes, "access_token_issue", refuse)


def url(grant_id: int) -> str:
    return f"/grants/{grant_id}/access-token"


def issued() -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(action="grant.token_issued").order_by("id"))


def test_the_route_has_the_fast_path_in_front() -> None:
    match = resolve("/api/v1/grants/1/access-token")
    assert match.url_name == "broker" and match.func.__module__ == "mailgrant.api.broker"


def test_fast_path_answers_as_the_route_did(api_as, grant, route_only) -> None:
    response = api_as("tokens").post(url(grant.pk), {"min_valid_seconds": 60})
    assert response.status_code == 200, response.content
    assert response["Cache-Control"] == "no-store"
    assert response["Content-Type"] == "application/json; charset=utf-8"
    data = response.json()
    assert data == {
        "access_token": ACCESS_TOKEN,
        "token_type": "Bearer",
        "expires_at": data["expires_at"],
        "scope": "openid email",
    }
    assert data["expires_at"].endswith("Z")
    (event,) = issued()
    assert (event.actor, event.target_type, event.target_id, event.outcome) == (
        "apikey:key-tokens-0",
        "oauth.grant",
        str(grant.pk),
        "ok",
    )
    assert event.target_repr == str(grant) == "helpdesk: alice@example.test"
    assert event.user is None and ACCESS_TOKEN not in event.message


def test_fast_path_and_route_give_the_same_bytes(api_as, grant, admin_client) -> None:
    """An admin session goes through the route; a key takes the fast path."""
    fast = api_as("tokens").post(url(grant.pk))
    routed = admin_client.post(f"/api/v1{url(grant.pk)}")
    assert fast.status_code == routed.status_code == 200
    assert fast.content == routed.content
    assert fast["Cache-Control"] == routed["Cache-Control"] == "no-store"
    assert fast["Content-Type"] == routed["Content-Type"]
    actors = [e.actor for e in issued()]
    assert actors == ["apikey:key-tokens-0", "user:admin"]
    assert issued()[1].user is not None


def test_every_call_writes_its_audit_row(api_as, grant, route_only) -> None:
    tokens = api_as("tokens")
    for _ in range(25):
        assert tokens.post(url(grant.pk)).status_code == 200
    assert len(issued()) == 25


def test_last_used_is_noted_to_within_the_precision(api_as, grant, route_only) -> None:
    tokens = api_as("tokens")
    key = ApiKey.objects.get()
    assert key.last_used_at is None
    before = timezone.now()
    tokens.post(url(grant.pk))
    key.refresh_from_db()
    assert key.last_used_at is not None and key.last_used_at >= before
    # A use within the precision leaves it be; a later one moves it.
    recent = timezone.now() - LAST_USED_PRECISION / 2
    ApiKey.objects.filter(pk=key.pk).update(last_used_at=recent)
    tokens.post(url(grant.pk))
    key.refresh_from_db()
    assert key.last_used_at == recent
    stale = timezone.now() - LAST_USED_PRECISION * 2
    ApiKey.objects.filter(pk=key.pk).update(last_used_at=stale)
    before = timezone.now()
    tokens.post(url(grant.pk))
    key.refresh_from_db()
    assert key.last_used_at >= before


def test_unknown_and_malformed_keys_are_401(grant) -> None:
    for header in (
        "Bearer mgk_made-up",
        "Bearer  " + "mgk_x",  # two spaces: not the key
        "Basic bWdrXzp4",
        "mgk_no-scheme",
        "",
    ):
        response = Client().post(
            f"/api/v1{url(grant.pk)}", headers={"Authorization": header} if header else {}
        )
        assert response.status_code == 401, header
        assert response.json()["code"] == "unauthorized"
        assert response["Cache-Control"] == "no-store"
    assert issued() == []


def test_revoked_key_is_401(api_as, grant) -> None:
    tokens = api_as("tokens")
    assert tokens.post(url(grant.pk)).status_code == 200
    apikey_revoke(key=ApiKey.objects.get())
    response = tokens.post(url(grant.pk))
    assert response.status_code == 401 and response.json()["code"] == "unauthorized"
    assert len(issued()) == 1


def test_key_without_the_tokens_scope_is_403(api_as, grant) -> None:
    response = api_as("read", "write").post(url(grant.pk))
    assert response.status_code == 403
    assert response.json() == {
        "code": "forbidden",
        "message": "This API key lacks the 'tokens' scope.",
    }
    assert issued() == []


# An unknown grant is a 404; an id past any database id is no id at all (400, as on every
# route), and neither goes through the fast path's SQL.
@pytest.mark.parametrize(("offset", "status"), [(1000, 404), (10**30, 400)])
def test_unknown_grant_is_refused(api_as, admin_client, grant, offset, status) -> None:
    response = api_as("tokens").post(url(grant.pk + offset))
    assert response.status_code == status and response.json()["code"]
    assert admin_client.post(f"/api/v1{url(grant.pk + offset)}").status_code == status
    assert issued() == []


def test_grant_needing_reauthorization_says_so(api_as, grant) -> None:
    Grant.objects.filter(pk=grant.pk).update(
        state=Grant.State.REAUTHORIZATION_REQUIRED, last_error="invalid_grant"
    )
    response = api_as("tokens").post(url(grant.pk))
    assert response.status_code == 422
    assert response.json()["code"] == "reauthorization_required"
    assert ACCESS_TOKEN not in response.content.decode()
    assert issued() == []


def test_disabled_client_gives_no_token(api_as, grant) -> None:
    oauth_client_set_status(client=grant.client, status=OAuthClient.Status.DISABLED)
    response = api_as("tokens").post(url(grant.pk))
    assert response.status_code == 422
    assert response.json()["code"] == "client_disabled"
    assert ACCESS_TOKEN not in response.content.decode()
    assert issued() == []


def test_grant_never_authorized_gives_no_token(api_as, make_client) -> None:
    grant = Grant.objects.create(client=make_client(), is_default=True)
    response = api_as("tokens").post(url(grant.pk))
    assert response.status_code == 422 and response.json()["code"] == "not_authorized"


@pytest.mark.parametrize(
    ("query", "body", "field"),
    [
        ("?min_valid_seconds=-1", None, "min_valid_seconds"),
        ("?min_valid_seconds=86401", None, "min_valid_seconds"),
        ("?min_valid_seconds=soon", None, "min_valid_seconds"),
        ("", {"min_valid_seconds": 86401}, "min_valid_seconds"),
        ("", {"min_valid_seconds": "soon"}, "min_valid_seconds"),
        ("", {"min_valid_seconds": None}, "min_valid_seconds"),
    ],
)
def test_bad_min_valid_seconds_is_400_from_the_route(api_as, grant, query, body, field) -> None:
    response = api_as("tokens").post(url(grant.pk) + query, body)
    assert response.status_code == 400, response.content
    data = response.json()
    assert data["code"] == "validation_error"
    assert [f["field"] for f in data["fields"]] == [field]
    assert issued() == []


@pytest.mark.parametrize("body", [b"{not json", b'{"min_valid_seconds": 6'])
def test_malformed_body_is_400(api_as, grant, body) -> None:
    tokens = api_as("tokens")
    response = tokens.client.post(
        f"/api/v1{url(grant.pk)}",
        data=body,
        content_type="application/json",
        headers=tokens.headers,
    )
    assert response.status_code == 400
    assert response.json()["code"] == "validation_error"
    assert issued() == []


@pytest.mark.parametrize(
    ("query", "body"),
    [("?min_valid_seconds=60", None), ("", {"min_valid_seconds": 60}), ("", {}), ("", None)],
)
def test_plain_requests_take_the_fast_path(api_as, grant, route_only, query, body) -> None:
    response = api_as("tokens").post(url(grant.pk) + query, body)
    assert response.status_code == 200 and response.json()["access_token"] == ACCESS_TOKEN


def test_other_methods_are_the_routes(api_as, grant) -> None:
    assert api_as("tokens").get(url(grant.pk)).status_code == 405


def test_admin_session_needs_csrf(admin_user, grant) -> None:
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(admin_user)
    response = strict.post(f"/api/v1{url(grant.pk)}")
    assert response.status_code in (401, 403)
    assert ACCESS_TOKEN not in response.content.decode()
    assert issued() == []


def test_a_token_that_is_not_valid_long_enough_is_left_to_the_route(
    api_as, make_client, make_grant, monkeypatch
) -> None:
    """Expired, inside the refresh margin, or shorter-lived than asked: the route refreshes."""
    calls: list[int] = []

    def refreshed(**kwargs):
        calls.append(kwargs["grant_id"])
        return TokenSet(access_token="refreshed", expires_at=None)

    monkeypatch.setattr(grant_routes, "access_token_issue", refreshed)
    client = make_client()
    expired = make_grant(client, expires_in=-10)
    assert api_as("tokens").post(url(expired.pk)).json()["access_token"] == "refreshed"
    Grant.objects.filter(pk=expired.pk).delete()
    soon = make_grant(client, expires_in=120)  # inside the 300 s refresh margin
    assert api_as("tokens").post(url(soon.pk)).json()["access_token"] == "refreshed"
    Grant.objects.filter(pk=soon.pk).delete()
    hour = make_grant(client, expires_in=3000, lifetime=3600)  # an hour's token, 10 min old
    assert api_as("tokens").post(url(hour.pk) + "?min_valid_seconds=7200").status_code == 200
    assert calls == [expired.pk, soon.pk, hour.pk]
    assert (
        api_as("tokens").post(url(hour.pk) + "?min_valid_seconds=600").json()["access_token"]
        == "at-initial"
    )
    assert calls == [expired.pk, soon.pk, hour.pk]  # that one came from the fast path


@pytest.mark.integration
def test_expired_token_is_refreshed_at_the_provider(api_as, oidc, mail_grant) -> None:
    old = mail_grant.tokens()
    expired = TokenSet.from_dict(
        {**old.to_dict(), "obtained_at": old.obtained_at - 3600, "expires_at": old.obtained_at - 1}
    )
    Grant.objects.filter(pk=mail_grant.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    grant = Grant.objects.get(pk=mail_grant.pk)
    grant.token_set = expired.to_dict()  # type: ignore[assignment]
    grant.save(update_fields=["token_set"])

    response = api_as("tokens").post(url(grant.pk), {"min_valid_seconds": 60})
    assert response.status_code == 200, response.content
    assert response["Cache-Control"] == "no-store"
    issued_token = response.json()["access_token"]
    assert issued_token != old.access_token
    grant.refresh_from_db()
    assert grant.refresh_count == 1 and grant.tokens().access_token == issued_token
    client = grant.client
    assert oidc.introspect(
        issued_token, client_id=client.client_id, client_secret=client.client_secret.reveal()
    )["active"]
    assert [e.actor for e in issued()] == ["apikey:key-tokens-0"]
    assert AuditEvent.objects.filter(action="grant.refreshed").count() == 1
    # The refreshed token now comes from the fast path.
    again = api_as("tokens").post(url(grant.pk))
    assert again.json()["access_token"] == issued_token
    assert len(issued()) == 2 and grant.refresh_count == 1
