"""OAuth clients over the API: CRUD, errors, scopes, secrets write-only, validate and poll."""

import pytest

from mailgrant.common.models import AuditEvent
from mailgrant.oauth.models import OAuthClient
from tests.servers.oidc import ACCOUNTS

pytestmark = pytest.mark.django_db

SECRET = "canary-api-secret-5e8d"
BODY = {
    "name": "Google support",
    "provider": "google",
    "client_id": "1234.apps",
    "client_secret": SECRET,
}


def test_crud_and_secret_write_only(api) -> None:
    created = api.post("/oauth-clients", BODY)
    assert created.status_code == 201, created.content
    data = created.json()
    assert data["has_client_secret"] is True and "client_secret" not in data
    assert data["redirect_uri"] == f"http://testserver/oauth/callback/{data['id']}/"
    assert SECRET not in created.content.decode()
    assert OAuthClient.objects.get().client_secret.reveal() == SECRET
    listed = api.get("/oauth-clients?provider=google")
    assert listed.json()["count"] == 1 and listed.json()["items"][0]["name"] == "Google support"
    assert api.get("/oauth-clients?provider=azure").json()["count"] == 0
    patched = api.patch(f"/oauth-clients/{data['id']}", {"status": "disabled"})
    assert patched.status_code == 200 and patched.json()["status"] == "disabled"
    assert OAuthClient.objects.get().client_secret.reveal() == SECRET  # kept
    assert api.get(f"/oauth-clients/{data['id']}").json()["status"] == "disabled"
    assert api.delete(f"/oauth-clients/{data['id']}").status_code == 204
    assert api.get(f"/oauth-clients/{data['id']}").status_code == 404
    actions = set(AuditEvent.objects.values_list("action", flat=True))
    assert {"oauth_client.created", "oauth_client.updated", "oauth_client.deleted"} <= actions
    # who: the API key by name, never "system"
    changes = AuditEvent.objects.filter(action__startswith="oauth_client.")
    actors = set(changes.values_list("actor", flat=True))
    assert len(actors) == 1 and actors.pop().startswith("apikey:")


@pytest.mark.parametrize(
    ("body", "status", "code", "field"),
    [
        ({**BODY, "provider": "yahoo"}, 400, "validation_error", "provider"),
        ({"provider": "google"}, 400, "validation_error", "name"),
        ({**BODY, "proxy": "not a proxy"}, 400, "validation_error", "proxy"),
        ({**BODY, "unknown_field": 1}, 400, "validation_error", "unknown_field"),
        ({**BODY, "provider": "generic"}, 400, "validation_error", "issuer"),
    ],
)
def test_bad_input_names_the_field(api, body, status, code, field) -> None:
    response = api.post("/oauth-clients", body)
    assert response.status_code == status, response.content
    problem = response.json()
    assert problem["code"] == code
    assert field in {f["field"] for f in problem["fields"]}
    assert not OAuthClient.objects.exists()


def test_duplicate_name_is_a_conflict(api) -> None:
    assert api.post("/oauth-clients", BODY).status_code == 201
    again = api.post("/oauth-clients", BODY)
    assert again.status_code == 409 and again.json()["code"] == "conflict"


def test_malformed_json_is_400_not_500(api) -> None:
    response = api.client.post(
        "/api/v1/oauth-clients",
        data="{not json",
        content_type="application/json",
        headers=api.headers,
    )
    assert response.status_code == 400


@pytest.mark.parametrize(
    ("scopes", "method", "path", "expected"),
    [
        ((), "get", "/oauth-clients", 401),
        (("read",), "get", "/oauth-clients", 200),
        (("read",), "post", "/oauth-clients", 403),
        (("write",), "get", "/oauth-clients", 403),
        (("tokens",), "get", "/oauth-clients", 403),
        (("write",), "post", "/oauth-clients", 201),
    ],
)
def test_scopes(api_as, scopes, method, path, expected) -> None:
    from tests.api_client import Api

    client = api_as(*scopes) if scopes else Api(None)
    response = getattr(client, method)(path, BODY if method == "post" else None)
    assert response.status_code == expected, response.content
    if expected >= 400:
        assert response.json()["code"] in {"unauthorized", "forbidden"}


def test_revoked_and_unknown_keys_are_refused(api_as) -> None:
    from mailgrant.api.models import ApiKey
    from mailgrant.api.services import apikey_revoke
    from tests.api_client import Api

    client = api_as("read")
    assert client.get("/oauth-clients").status_code == 200
    apikey_revoke(key=ApiKey.objects.get())
    assert client.get("/oauth-clients").status_code == 401
    assert Api("mgk_made-up").get("/oauth-clients").status_code == 401
    assert ApiKey.objects.get().last_used_at is not None


def test_admin_session_works_with_csrf(admin_client, admin_user) -> None:
    from django.test import Client

    assert admin_client.get("/api/v1/oauth-clients").status_code == 200
    assert (
        admin_client.post(
            "/api/v1/oauth-clients", BODY, content_type="application/json"
        ).status_code
        == 201
    )
    created = AuditEvent.objects.get(action="oauth_client.created")
    assert (created.actor, created.user) == (f"user:{admin_user.username}", admin_user)
    OAuthClient.objects.all().delete()
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(admin_user)
    refused = strict.post("/api/v1/oauth-clients", BODY, content_type="application/json")
    assert refused.status_code in (401, 403)
    assert not OAuthClient.objects.exists()


def test_validate_through_the_api_completes_in_any_browser(api, oidc) -> None:
    created = api.post(
        "/oauth-clients",
        {
            "name": "generic",
            "provider": "generic",
            "client_id": "api-flow",
            "client_secret": "api-secret",
            "issuer": oidc.issuer,
            "scope": "openid email offline_access",
        },
    ).json()
    oidc.register_client(
        client_id="api-flow", client_secret="api-secret", redirect_uris=[created["redirect_uri"]]
    )
    started = api.post(f"/oauth-clients/{created['id']}/validate")
    assert started.status_code == 201
    flow = started.json()
    poll = api.get(f"/authorizations/{flow['authorization_id']}").json()
    assert poll["outcome"] == "pending"
    redirect = oidc.login_headless(
        flow["authorize_url"],
        login="alice@example.test",
        password=ACCOUNTS["alice@example.test"]["password"],
    )
    from django.test import Client

    anonymous_browser = Client()
    landed = anonymous_browser.get(redirect[redirect.index("/oauth/") :])
    assert landed.status_code == 200
    assert "Authorized as alice@example.test" in landed.content.decode()
    poll = api.get(f"/authorizations/{flow['authorization_id']}").json()
    assert poll["outcome"] == "succeeded" and poll["grant_id"]
    grants = api.get(f"/oauth-clients/{created['id']}/grants").json()
    assert grants[0]["account"] == "alice@example.test" and grants[0]["state"] == "authorized"
    refreshed = api.post(f"/oauth-clients/{created['id']}/refresh")
    assert refreshed.status_code == 200 and refreshed.json()["last_refresh_at"]
    replay = anonymous_browser.get(redirect[redirect.index("/oauth/") :])
    assert replay.status_code == 400 and "already used" in replay.content.decode()


def test_related_ldaps_are_set_read_and_checked(api_as) -> None:
    from mailgrant.directory.models import LdapDirectory

    corp = LdapDirectory.objects.create(
        name="Corp", server_uri="ldap://127.0.0.1:1", base_dn="dc=example,dc=test"
    )
    api = api_as("read", "write")
    body = {
        "name": "Corp sign-in",
        "provider": "azure",
        "type": "user",
        "client_id": "00000000-1111-2222-3333-444444444444",
        "related_ldaps": [corp.pk],
    }
    created = api.post("/oauth-clients", body)
    assert created.status_code == 201, created.content
    assert created.json()["related_ldaps"] == [corp.pk]
    client_id = created.json()["id"]

    dangling = api.patch(f"/oauth-clients/{client_id}", {"related_ldaps": [corp.pk + 99]})
    assert dangling.status_code == 400
    assert dangling.json()["fields"][0]["field"] == "related_ldaps"
    assert api.get(f"/oauth-clients/{client_id}").json()["related_ldaps"] == [corp.pk]

    cleared = api.patch(f"/oauth-clients/{client_id}", {"related_ldaps": []})
    assert cleared.status_code == 200 and cleared.json()["related_ldaps"] == []
