"""Odd and hostile input over the API: each case once gave a server error, an HTML page, a wrong
status or a corrupted row (found by tests/api/test_schema.py); each is now a documented
problem JSON."""

import socket

import pytest
from django.test import Client

from mailgrant.mailboxes.models import Mailbox
from mailgrant.oauth.models import OAuthClient

pytestmark = pytest.mark.django_db

BEYOND_64_BITS = 2**63
CLIENT = {
    "name": "hostile",
    "provider": "generic",
    "client_id": "hostile-client",
    "authorize_url": "http://127.0.0.1:9/authorize",
    "token_url": "http://127.0.0.1:9/token",
}
MAILBOX = {"name": "hostile", "host": "127.0.0.1", "port": 993, "username": "a@example.test"}


def assert_problem(response, status: int, field: str | None = None) -> dict:
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith("application/json")
    problem = response.json()
    assert problem["code"] and problem["message"]
    if field is not None:
        assert field in {f["field"] for f in problem["fields"]}, problem
    return problem


@pytest.mark.parametrize(
    "path", ["/oauth-clients/abc", "/grants/1.5/access-token", "/mailboxes/null/messages"]
)
def test_an_id_that_is_no_integer_is_a_json_400(api, path) -> None:
    # Django's int converter made these an HTML 404 page
    call = api.post if path.endswith("access-token") else api.get
    assert_problem(call(path), 400)


@pytest.mark.parametrize("path", ["/nope", "/oauth-clients/1/nope", "/grants/1/access-token/x"])
def test_an_unknown_api_path_is_a_json_404(api, path) -> None:
    # Django's HTML page answered
    problem = assert_problem(api.get(path), 404)
    assert problem["code"] == "not_found" and "/api/v1/docs" in problem["message"]


def test_a_post_to_an_unknown_api_path_is_a_json_404_too() -> None:
    browserless = Client(enforce_csrf_checks=True)  # as a real server: CSRF checked
    response = browserless.post("/api/v1/nope", data="{}", content_type="application/json")
    assert_problem(response, 404)


@pytest.mark.parametrize("value", [0, -1, BEYOND_64_BITS])
def test_an_id_out_of_range_is_a_400(api, value) -> None:
    # past 64 bits the database overflowed (500)
    assert_problem(api.get(f"/grants/{value}"), 400, "grant_id")
    assert_problem(api.get(f"/messages/{value}/raw"), 400, "message_id")


@pytest.mark.parametrize(
    ("query", "field"),
    [
        (f"offset={BEYOND_64_BITS}", "offset"),
        ("limit=100000000000000000000", "limit"),
        ("limit=1001", "limit"),
        ("limit=0", "limit"),
    ],
)
def test_pagination_out_of_range_is_a_400(api, query, field) -> None:
    # a queryset sliced past 64 bits was a 409 "conflict" on SQLite, a 500 on PostgreSQL
    mailbox = Mailbox.objects.create(**MAILBOX)
    assert_problem(api.get(f"/mailboxes/{mailbox.pk}/messages?{query}"), 400, field)
    assert api.get(f"/mailboxes/{mailbox.pk}/messages?limit=1000").status_code == 200


def test_a_filter_outside_its_choices_is_a_400(api) -> None:
    assert_problem(api.get("/oauth-clients?provider=yahoo"), 400, "provider")
    assert_problem(api.get("/oauth-clients?status=on%00"), 400, "status")
    assert api.get("/oauth-clients?provider=generic&type=user&status=disabled").status_code == 200


@pytest.mark.parametrize(
    "query", ["limit=5&limit=5000", "provider=google&provider=azure", "offset=x&offset=1"]
)
def test_a_single_valued_parameter_sent_twice_is_a_400(api, query) -> None:
    # the last value used to win unseen
    assert_problem(api.get(f"/oauth-clients?{query}"), 400, query.split("=")[0])


def test_unknown_query_parameters_are_ignored(api) -> None:
    assert api.get("/oauth-clients?utm=1&utm=2").status_code == 200


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"verify_ssl": 0}, "verify_ssl"),
        ({"verify_ssl": "false"}, "verify_ssl"),
        ({"user_fields": {"email": 1}}, "user_fields.email"),
    ],
)
def test_a_client_value_of_the_wrong_json_type_is_a_400(api, change, field) -> None:
    # 0 was taken for false, and "false" too
    assert_problem(api.post("/oauth-clients", {**CLIENT, **change}), 400, field)
    assert not OAuthClient.objects.exists()


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"port": "993"}, "port"),
        ({"enabled": 1}, "enabled"),
        ({"oauth_client": "1"}, "oauth_client"),
    ],
)
def test_a_mailbox_value_of_the_wrong_json_type_is_a_400(api, change, field) -> None:
    assert_problem(api.post("/mailboxes", {**MAILBOX, **change}), 400, field)
    assert not Mailbox.objects.exists()


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/oauth-clients", {**CLIENT, "name": "nul\x00"}, "name"),
        ("/oauth-clients", {**CLIENT, "user_fields": {"email\x00": "email"}}, "user_fields"),
        ("/mailboxes", {**MAILBOX, "folder": "IN\x00BOX"}, "folder"),
        ("/mailboxes", {**MAILBOX, "password": "pw\x00"}, "password"),
    ],
)
def test_nul_characters_are_refused(api, path, body, field) -> None:
    # stored as given on SQLite; PostgreSQL cannot store them at all (a 500 there)
    problem = assert_problem(api.post(path, body), 400, field)
    assert "NUL" in problem["message"]
    assert not OAuthClient.objects.exists() and not Mailbox.objects.exists()


def test_nul_characters_in_a_message_to_send_are_refused(api) -> None:
    mailbox = Mailbox.objects.create(**{**MAILBOX, "protocol": "smtp", "direction": "outgoing"})
    response = api.post(f"/mailboxes/{mailbox.pk}/send", {"to": ["b@example.test\x00"]})
    assert_problem(response, 400, "to")


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"oauth_client": 4242}, "oauth_client"),
        ({"grant": 4242}, "grant"),
        ({"oauth_client": BEYOND_64_BITS}, "oauth_client"),
        ({"grant": 0}, "grant"),
    ],
)
def test_a_mailbox_naming_a_missing_client_or_grant_is_a_400(api, change, field) -> None:
    # it was a 404, as if the mailboxes URL did not exist (a 500 past 64 bits)
    assert_problem(api.post("/mailboxes", {**MAILBOX, **change}), 400, field)
    assert not Mailbox.objects.exists()


def test_null_in_a_client_patch_restores_the_default(api, make_client) -> None:
    # user_fields: null was stored as "", and every later read of the client was a 500
    client = make_client(user_fields={"email": "mail"}, scope="openid")
    patched = api.patch(f"/oauth-clients/{client.pk}", {"user_fields": None, "scope": None})
    assert patched.status_code == 200, patched.content
    assert patched.json()["user_fields"] == {} and patched.json()["scope"] == ""
    client.refresh_from_db()
    client.sign_in.refresh_from_db()
    assert client.sign_in.user_fields == {} and client.scope == ""
    assert api.get(f"/oauth-clients/{client.pk}").status_code == 200
    assert api.get("/oauth-clients").status_code == 200


def test_a_null_name_in_a_client_patch_is_a_400(api, make_client) -> None:
    client = make_client(name="kept")
    assert_problem(api.patch(f"/oauth-clients/{client.pk}", {"name": None}), 400, "name")
    client.refresh_from_db()
    assert client.name == "kept"


def test_an_unreadable_proxy_url_is_a_field_error(api) -> None:
    # urlsplit's ValueError (an unclosed IPv6 bracket) was a 500
    assert_problem(api.post("/oauth-clients", {**CLIENT, "proxy": "http://[::1"}), 400, "proxy")
    assert not OAuthClient.objects.exists()


def test_a_socks_proxy_that_refuses_is_a_503(api, make_client, make_grant) -> None:
    # socks5 was accepted but its support was not installed: every refresh was a 500
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
        client = make_client(
            proxy=f"socks5://127.0.0.1:{port}", token_url="http://127.0.0.1:9/token"
        )
        make_grant(client)
        response = api.post(f"/oauth-clients/{client.pk}/refresh")
    assert_problem(response, 503)


def test_every_error_response_is_documented(api) -> None:
    schema = api.get("/openapi.json").json()
    assert "Problem" in schema["components"]["schemas"]
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            documented = set(operation["responses"])
            if path.endswith("/health"):  # no key, no input: it can only answer 200
                assert documented == {"200"}
                continue
            assert {"400", "401", "403"} <= documented, (method, path)
            if "{" in path:
                assert "404" in documented, (method, path)
            for status in documented - {"200", "201", "204"}:
                content = operation["responses"][status]["content"]["application/json"]
                assert content["schema"]["$ref"].endswith("/Problem"), (method, path, status)
    raw = schema["paths"]["/api/v1/messages/{message_id}/raw"]["get"]["responses"]["200"]
    assert set(raw["content"]) == {"message/rfc822"}
    refresh = schema["paths"]["/api/v1/oauth-clients/{client_id}/refresh"]["post"]["responses"]
    assert {"422", "502", "503"} <= set(refresh)


OUTGOING = {
    "name": "hostile-out",
    "direction": "outgoing",
    "protocol": "smtp",
    "host": "127.0.0.1",
    "port": 1,  # nothing listens: a message that got past the checks would be a 502/503
    "security": "none",
    "username": "a@example.test",
    "auth_method": "password",
    "password": "pw",
}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        # found by schemathesis: the email header parser raised IndexError (a 500)
        ({"to": ["Z", "", ":\\}8S"], "text": "x"}, "to"),
        ({"to": ["a@example.test\r\nBcc: victim@example.org"], "text": "x"}, "to"),
        ({"to": ["a@example.test"], "cc": ["no at sign"], "text": "x"}, "cc"),
        (
            {"to": ["a@example.test"], "bcc": ["b@example.test\nRCPT TO:<c@x>"], "text": "x"},
            "recipients",
        ),
        ({"to": ["a@example.test"], "sender": "@", "text": "x"}, "sender"),
        ({"to": ["Bob\x07 <b@example.test>"], "text": "x"}, "to"),
    ],
)
def test_send_refuses_what_is_no_address_before_connecting(api, body, field) -> None:
    created = api.post("/mailboxes", OUTGOING)
    assert created.status_code == 201, created.content
    assert_problem(api.post(f"/mailboxes/{created.json()['id']}/send", body), 400, field)
