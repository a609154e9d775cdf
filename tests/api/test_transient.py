"""A provider or mail server that is down is 503 on every route that can meet it, whichever
app's service met it: trying again later may succeed, and the answer says so."""

from __future__ import annotations

import socket

import pytest

from mailgrant.mailboxes.models import Mailbox

pytestmark = [pytest.mark.integration, pytest.mark.django_db]


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def outage(make_client, make_grant, dovecot):
    """A client whose token endpoint is down, its grant's access token expired, and mailboxes
    on the real mail server that log in with it (the token is asked for at the login)."""
    client = make_client(token_url=f"http://127.0.0.1:{_closed_port()}/token")
    grant = make_grant(client, expires_in=-60)
    mail = {"host": "127.0.0.1", "security": "none", "username": "alice@example.test"}
    incoming = Mailbox.objects.create(
        name="in", port=dovecot.imap_port, oauth_client=client, grant=grant, **mail
    )
    outgoing = Mailbox.objects.create(
        name="out", direction="outgoing", protocol="smtp", port=dovecot.submission_port,
        oauth_client=client, grant=grant, **mail,
    )  # fmt: skip
    return client, grant, incoming, outgoing


def test_a_provider_outage_is_503_on_every_route_that_meets_it(api, outage) -> None:
    client, grant, incoming, outgoing = outage
    calls = [
        (f"/grants/{grant.pk}/refresh", None),
        (f"/oauth-clients/{client.pk}/refresh", None),
        (f"/grants/{grant.pk}/access-token", None),
        (f"/mailboxes/{incoming.pk}/fetch", None),
        (f"/mailboxes/{outgoing.pk}/send", {"to": ["bob@example.test"], "text": "hi"}),
    ]
    for path, body in calls:
        response = api.post(path, body)
        assert response.status_code == 503, (path, response.content)
        assert response.json()["code"] == "provider_unreachable", path
        assert "cannot connect" in response.json()["message"], path


def test_a_mail_server_that_is_down_is_503(api, outage, make_client, make_grant) -> None:
    _, _, incoming, outgoing = outage
    working = make_client()
    Mailbox.objects.filter(pk__in=[incoming.pk, outgoing.pk]).update(
        oauth_client=working, grant=make_grant(working), port=_closed_port()
    )
    for mailbox, path, body in (
        (incoming, "fetch", None),
        (outgoing, "send", {"to": ["bob@example.test"], "text": "hi"}),
    ):
        response = api.post(f"/mailboxes/{mailbox.pk}/{path}", body)
        assert response.status_code == 503, response.content
        assert response.json()["code"] == "connect"
        assert "refused the connection" in response.json()["message"]


def test_what_the_admin_must_fix_stays_422(api, outage) -> None:
    client, grant, incoming, _ = outage
    client.status = "disabled"
    client.save()
    for path in (f"/grants/{grant.pk}/refresh", f"/mailboxes/{incoming.pk}/fetch"):
        response = api.post(path)
        assert response.status_code == 422, response.content
        assert response.json()["code"] == "client_disabled"
