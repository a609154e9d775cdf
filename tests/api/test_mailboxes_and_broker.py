"""Mailboxes and the token broker over the API, against the real provider and Dovecot."""

import base64
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from mailgrant.common.models import AuditEvent
from mailgrant.oauth.models import Grant
from tests.mailboxes.conftest import message
from tests.servers.dovecot import PASSWORD_USERS

pytestmark = [pytest.mark.integration, pytest.mark.django_db]


def test_broker_returns_a_valid_token_and_no_store(api_as, oidc, mail_grant) -> None:
    tokens = api_as("tokens")
    response = tokens.post(f"/grants/{mail_grant.pk}/access-token", {"min_valid_seconds": 60})
    assert response.status_code == 200, response.content
    assert response["Cache-Control"] == "no-store"
    data = response.json()
    assert set(data) == {"access_token", "token_type", "expires_at", "scope"}
    client = mail_grant.client
    info = oidc.introspect(
        data["access_token"],
        client_id=client.client_id,
        client_secret=client.client_secret.reveal(),
    )
    assert info["active"] is True
    event = AuditEvent.objects.get(action="grant.token_issued")
    assert event.actor.startswith("apikey:") and data["access_token"] not in event.message
    # Other scopes may not ask for tokens; tokens may not read.
    assert api_as("read", "write").post(f"/grants/{mail_grant.pk}/access-token").status_code == 403
    assert tokens.get("/oauth-clients").status_code == 403
    assert tokens.post("/grants/999999/access-token").status_code == 404


def test_broker_reports_a_grant_needing_validation(api, mail_grant) -> None:
    Grant.objects.filter(pk=mail_grant.pk).update(
        state="reauthorization_required", last_error="invalid_grant"
    )
    response = api.post(f"/grants/{mail_grant.pk}/access-token")
    assert response.status_code == 422
    assert response.json()["code"] == "reauthorization_required"


@pytest.mark.django_db(transaction=True)  # the threads' own connections see the committed key
def test_broker_with_20_second_tokens_refreshes_once_per_expiry(
    api_as, oidc, oidc_client, validate_headless
) -> None:
    oidc.set_access_token_ttl(20)
    try:
        grant = validate_headless(oidc_client()).grant
        oidc.reset_stats()
        tokens = api_as("tokens")
        client = grant.client

        start = time.monotonic()

        def ask(i: int) -> str:
            time.sleep(max(0.0, start + i * 0.3 - time.monotonic()))  # 200 calls over a minute
            response = tokens.post(f"/grants/{grant.pk}/access-token")
            assert response.status_code == 200, response.content
            return response.json()["access_token"]

        with ThreadPoolExecutor(8) as pool:
            issued = list(pool.map(ask, range(200)))
        stats = oidc.stats()
    finally:
        oidc.set_access_token_ttl(3600)
    # About one refresh per 10 s (half of a 20 s lifetime), never one per caller.
    assert 3 <= stats["token"].get("refresh_token", 0) <= 8, stats
    assert stats["grants_revoked"] == 0
    for token in set(issued[-5:]):
        assert oidc.introspect(
            token, client_id=client.client_id, client_secret=client.client_secret.reveal()
        )["active"]


def test_mailbox_crud_test_fetch_messages_raw_send(api, dovecot) -> None:
    user, password = next(iter(PASSWORD_USERS.items()))
    body = {
        "name": "api-in",
        "protocol": "imap",
        "host": "127.0.0.1",
        "port": dovecot.imap_port,
        "security": "none",
        "username": user,
        "auth_method": "password",
        "password": password,
    }
    created = api.post("/mailboxes", body)
    assert created.status_code == 201, created.content
    mailbox = created.json()
    assert mailbox["has_password"] is True and "password" not in mailbox
    assert password not in created.content.decode()
    assert api.post("/mailboxes", body).status_code == 409
    bad = api.post("/mailboxes", {**body, "name": "bad", "port": 0})
    assert bad.status_code == 400 and bad.json()["fields"][0]["field"] == "port"
    mismatch = api.post(
        "/mailboxes", {**body, "name": "bad", "protocol": "smtp", "direction": "incoming"}
    )
    assert mismatch.status_code == 400

    tested = api.post(f"/mailboxes/{mailbox['id']}/test").json()
    assert tested["ok"] and password not in tested["transcript"]
    dovecot.deliver(user, message(5, extra="api"))
    fetched = api.post(f"/mailboxes/{mailbox['id']}/fetch")
    assert fetched.status_code == 200 and fetched.json()["fetched"] >= 1
    page = api.get(f"/mailboxes/{mailbox['id']}/messages?limit=1").json()
    assert page["count"] >= 1 and len(page["items"]) == 1
    newest = page["items"][0]
    assert {"from", "to", "subject", "message_id", "uidvalidity", "uid"} <= set(newest)
    raw = api.get(f"/messages/{newest['id']}/raw")
    assert raw.status_code == 200 and raw["Content-Type"] == "message/rfc822"
    assert b"".join(raw.streaming_content).startswith(b"Return-Path")

    out = api.post(
        "/mailboxes",
        {
            **body,
            "name": "api-out",
            "direction": "outgoing",
            "protocol": "smtp",
            "port": dovecot.submission_port,
        },
    ).json()
    sent = api.post(
        f"/mailboxes/{out['id']}/send",
        {
            "to": ["bob@example.test"],
            "subject": "Via the API",
            "text": "hi",
            "attachments": [
                {
                    "filename": "a.txt",
                    "content_base64": base64.b64encode(b"A").decode(),
                    "content_type": "text/plain",
                }
            ],
        },
    )
    assert sent.status_code == 200, sent.content
    assert sent.json()["reply"].startswith("250")
    raw_send = api.post(
        f"/mailboxes/{out['id']}/send", {"to": ["bob@example.test"], "raw": "not base64!"}
    )
    assert raw_send.status_code == 400
    patched = api.patch(f"/mailboxes/{mailbox['id']}", {"enabled": False})
    assert patched.json()["enabled"] is False and patched.json()["has_password"] is True
    assert api.delete(f"/mailboxes/{mailbox['id']}").status_code == 204


def test_mail_server_down_is_503_and_refusal_502(api, dovecot) -> None:
    user = next(iter(PASSWORD_USERS))
    down = api.post(
        "/mailboxes",
        {
            "name": "down",
            "host": "127.0.0.1",
            "port": 9,
            "security": "none",
            "username": user,
            "auth_method": "password",
            "password": "x",
        },
    ).json()
    fetched = api.post(f"/mailboxes/{down['id']}/fetch")
    assert fetched.status_code == 503 and fetched.json()["code"] == "connect"
    refused = api.post(
        "/mailboxes",
        {
            "name": "refused",
            "host": "127.0.0.1",
            "port": dovecot.imap_port,
            "security": "none",
            "username": user,
            "auth_method": "password",
            "password": "wrong",
        },
    ).json()
    response = api.post(f"/mailboxes/{refused['id']}/fetch")
    assert (
        response.status_code == 502 and "refused the password login" in response.json()["message"]
    )
