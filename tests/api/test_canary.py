"""Canary sweep over the API: known secrets and tokens appear in no response but the broker's,
and never in the audit log."""

import base64

import pytest

from mailgrant.common.models import AuditEvent
from tests.servers.dovecot import PASSWORD_USERS

pytestmark = [pytest.mark.integration, pytest.mark.django_db]

CLIENT_SECRET = "canary-api-client-secret-71f3"
PROXY_PASSWORD = "canary-api-proxy-password-c4d1"


def _sent_forms(user: str, password: str) -> list[str]:
    """The forms a password login puts on the wire: IMAP's quoted string, SASL PLAIN's and
    LOGIN's base64."""
    quoted = password.replace("\\", "\\\\").replace('"', '\\"')
    plain = base64.b64encode(f"\0{user}\0{password}".encode()).decode()
    alone = base64.b64encode(password.encode()).decode()
    return [quoted, plain, plain.rstrip("="), alone, alone.rstrip("=")]


def test_no_secret_in_any_response_or_audit_row(
    api, oidc, oidc_client, validate_headless, dovecot, make_client
) -> None:
    client = oidc_client(client_secret=CLIENT_SECRET)
    grant = validate_headless(client).grant
    tokens = grant.tokens()
    user, password = next(iter(PASSWORD_USERS.items()))
    canaries = [CLIENT_SECRET, password, tokens.access_token, tokens.refresh_token, tokens.id_token]

    # A password with quotes and backslashes, for the masked transcripts of IMAP and SMTP.
    quoted_user, quoted_password = list(PASSWORD_USERS.items())[1]
    canaries += [quoted_password, *_sent_forms(quoted_user, quoted_password), PROXY_PASSWORD]
    proxied = make_client(name="proxied", proxy=f"http://puser:{PROXY_PASSWORD}@127.0.0.1:9")
    logins = {
        protocol: api.post(
            "/mailboxes",
            {
                "name": f"canary-{protocol}",
                "protocol": protocol,
                "host": "127.0.0.1",
                "port": port,
                "security": "none",
                "username": quoted_user,
                "auth_method": "password",
                "password": quoted_password,
            },
        )
        for protocol, port in (("imap", dovecot.imap_port), ("smtp", dovecot.submission_port))
    }

    responses = [*logins.values()]
    for login in logins.values():
        responses.append(api.post(f"/mailboxes/{login.json()['id']}/test"))
        assert responses[-1].json()["ok"] is True, responses[-1].content
    responses += [api.get(f"/oauth-clients/{proxied.pk}")]
    created = api.post(
        "/mailboxes",
        {
            "name": "canary",
            "host": "127.0.0.1",
            "port": dovecot.imap_port,
            "security": "none",
            "username": user,
            "auth_method": "password",
            "password": password,
        },
    )
    mailbox_id = created.json()["id"]
    responses += [
        created,
        api.get("/oauth-clients"),
        api.get(f"/oauth-clients/{client.pk}"),
        api.patch(f"/oauth-clients/{client.pk}", {"client_secret": CLIENT_SECRET}),
        api.get(f"/oauth-clients/{client.pk}/grants"),
        api.get(f"/grants/{grant.pk}"),
        api.post(f"/oauth-clients/{client.pk}/refresh"),
        api.get("/mailboxes"),
        api.get(f"/mailboxes/{mailbox_id}"),
        api.post(f"/mailboxes/{mailbox_id}/test"),
        api.post(f"/mailboxes/{mailbox_id}/fetch"),
        api.patch(f"/mailboxes/{mailbox_id}", {"password": "wrong-" + password}),
        api.post(f"/mailboxes/{mailbox_id}/test"),  # refused: the server's words come back
        api.get("/openapi.json"),
    ]
    for response in responses:
        assert response.status_code < 500, response.content
        body = response.content.decode()
        for canary in [*canaries, "wrong-" + password]:
            assert canary not in body, f"a secret leaked into {response.request['PATH_INFO']}"

    broker = api.post(f"/grants/{grant.pk}/access-token")
    assert broker.status_code == 200  # the one response that carries a token, by design
    issued = broker.json()["access_token"]
    for event in AuditEvent.objects.all():
        text = f"{event.actor} {event.action} {event.target_repr} {event.message}"
        for canary in [*canaries, issued, "wrong-" + password]:
            assert canary not in text
