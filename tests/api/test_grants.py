"""Grants over the API: list, refresh, make default, delete; Validate of a named grant; deletes
refused while mailboxes depend on what would go; the mailbox rules the admin form has."""

import pytest

from mailgrant.common.models import AuditEvent
from mailgrant.mailboxes.models import Mailbox
from mailgrant.oauth.models import Grant, PendingAuthorization

pytestmark = pytest.mark.django_db


@pytest.fixture
def grants(make_client, make_grant):
    a, b = make_client(name="a"), make_client(name="b")
    alice = make_grant(a, access_token="canary-api-grant-at")
    bob = Grant.objects.create(client=a, account="bob@example.test")
    carol = make_grant(b, account="carol@example.test")
    return alice, bob, carol


def test_list_and_filter(api, grants) -> None:
    alice, bob, carol = grants
    every = api.get("/grants")
    assert every.status_code == 200
    assert [g["id"] for g in every.json()["items"]] == [alice.pk, bob.pk, carol.pk]
    assert "canary-api-grant-at" not in every.content.decode()
    only_a = api.get(f"/grants?client_id={alice.client_id}").json()
    assert [g["account"] for g in only_a["items"]] == ["alice@example.test", "bob@example.test"]
    assert api.get("/grants?client_id=999999").status_code == 404


def test_set_default(api, grants) -> None:
    alice, bob, _ = grants
    response = api.post(f"/grants/{bob.pk}/default")
    assert response.status_code == 200 and response.json()["is_default"] is True
    assert not Grant.objects.get(pk=alice.pk).is_default
    assert AuditEvent.objects.filter(action="grant.default_set").count() == 1
    assert api.post("/grants/999999/default").status_code == 404


def test_delete_and_in_use(api, grants) -> None:
    alice, bob, _ = grants
    assert api.delete(f"/grants/{bob.pk}").status_code == 204
    assert api.get(f"/grants/{bob.pk}").status_code == 404
    Mailbox.objects.create(
        name="support", host="h", port=993, username="u", oauth_client=alice.client, grant=alice
    )
    refused = api.delete(f"/grants/{alice.pk}")
    assert refused.status_code == 409 and refused.json()["code"] == "in_use"
    assert "support" in refused.json()["message"]
    client_refused = api.delete(f"/oauth-clients/{alice.client_id}")
    assert client_refused.status_code == 409 and client_refused.json()["code"] == "in_use"
    assert Grant.objects.filter(pk=alice.pk).exists()


def test_refresh_a_grant_that_cannot_be(api, grants) -> None:
    _, bob, _ = grants
    response = api.post(f"/grants/{bob.pk}/refresh")
    assert response.status_code == 422 and response.json()["code"] == "not_authorized"


@pytest.mark.parametrize(
    ("scopes", "method", "path", "expected"),
    [
        (("read",), "get", "/grants", 200),
        (("tokens",), "get", "/grants", 403),
        (("read",), "post", "/grants/{id}/default", 403),
        (("read",), "delete", "/grants/{id}", 403),
        (("tokens",), "post", "/grants/{id}/refresh", 403),
        (("write",), "post", "/grants/{id}/default", 200),
    ],
)
def test_scopes(api_as, grants, scopes, method, path, expected) -> None:
    response = getattr(api_as(*scopes), method)(path.replace("{id}", str(grants[1].pk)))
    assert response.status_code == expected, response.content


def test_validate_a_named_grant_with_a_login_hint(api, grants) -> None:
    alice, bob, carol = grants
    started = api.post(
        f"/oauth-clients/{alice.client_id}/validate",
        {"grant": bob.pk, "login_hint": "bob@example.test"},
    )
    assert started.status_code == 201, started.content
    assert "login_hint=bob%40example.test" in started.json()["authorize_url"]
    pending = PendingAuthorization.objects.get()
    assert (pending.grant_id, pending.purpose) == (bob.pk, "api")
    other = api.post(f"/oauth-clients/{alice.client_id}/validate", {"grant": carol.pk})
    assert other.status_code == 404
    wrong = api.post(f"/oauth-clients/{alice.client_id}/validate", {"grant": "x", "extra": 1})
    assert wrong.status_code == 400
    assert {f["field"] for f in wrong.json()["fields"]} == {"grant", "extra"}


@pytest.mark.integration
def test_refresh_a_grant_at_the_real_provider(api, mail_grant) -> None:
    response = api.post(f"/grants/{mail_grant.pk}/refresh")
    assert response.status_code == 200, response.content
    assert response.json()["last_refresh_at"]
    assert Grant.objects.get(pk=mail_grant.pk).refresh_count == 1


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"protocol": "smtp", "direction": "incoming"}, "direction"),
        ({"auth_method": "oauth2"}, "oauth_client"),
        ({"protocol": "pop3", "post_fetch_action": "mark_seen"}, "post_fetch_action"),
        ({"password": None}, "password"),
    ],
)
def test_mailbox_rules_of_the_form_hold_in_the_api(api, body, field) -> None:
    base = {
        "name": "m",
        "host": "h",
        "port": 993,
        "username": "u",
        "auth_method": "password",
        "password": "pw-value",
    }
    response = api.post("/mailboxes", {k: v for k, v in {**base, **body}.items() if v is not None})
    assert response.status_code == 400, response.content
    problem = response.json()
    assert problem["code"] == "validation_error"
    assert [f["field"] for f in problem["fields"]] == [field]
    assert not Mailbox.objects.exists()


def test_authorize_a_mailbox_account(api, make_client) -> None:
    client = make_client(name="c")
    created = api.post(
        "/mailboxes",
        {"name": "m", "host": "h", "port": 993, "username": "m@example.test",
         "oauth_client": client.pk},
    )  # fmt: skip
    mailbox_id = created.json()["id"]
    started = api.post(f"/mailboxes/{mailbox_id}/authorize")
    assert started.status_code == 201, started.content
    assert "login_hint=m%40example.test" in started.json()["authorize_url"]
    mailbox = Mailbox.objects.get()
    pending = PendingAuthorization.objects.get(pk=started.json()["authorization_id"])
    assert (pending.grant_id, pending.purpose) == (mailbox.grant_id, "api")
    assert api.get(f"/authorizations/{pending.pk}").json()["outcome"] == "pending"
    password = api.post(
        "/mailboxes",
        {"name": "p", "host": "h", "port": 993, "username": "p", "auth_method": "password",
         "password": "pw-value"},
    )  # fmt: skip
    refused = api.post(f"/mailboxes/{password.json()['id']}/authorize")
    assert refused.status_code == 422 and refused.json()["code"] == "config"
    assert api.post("/mailboxes/999999/authorize").status_code == 404
