"""Canary sweep over the API: known secrets and tokens appear in no response but the broker's,
and never in the audit log."""

import pytest

from mailgrant.common.models import AuditEvent
from tests.servers.dovecot import PASSWORD_USERS

pytestmark = [pytest.mark.integration, pytest.mark.django_db]

CLIENT_SECRET = "canary-api-client-secret-71f3"


def test_no_secret_in_any_response_or_audit_row(
    api, oidc, oidc_client, validate_headless, dovecot
) -> None:
    client = oidc_client(client_secret=CLIENT_SECRET)
    grant = validate_headless(client).grant
    tokens = grant.tokens()
    user, password = next(iter(PASSWORD_USERS.items()))
    canaries = [CLIENT_SECRET, password, tokens.access_token, tokens.refresh_token, tokens.id_token]

    responses = []
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
