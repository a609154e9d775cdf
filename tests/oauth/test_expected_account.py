"""A Validate that names the account it is for (an API or command-line login_hint, a mailbox's
own address) is refused when another account signs in: whoever sees the authorize URL cannot
finish it with their own mailbox. Against the real provider, completed by a stranger's
browser (no session at mailgrant), as the leaked-URL attack would be."""

from urllib.parse import urlsplit

import pytest
from django.test import Client

from mailgrant.common.models import AuditEvent
from mailgrant.mailboxes.models import Mailbox
from mailgrant.oauth.models import Grant, PendingAuthorization
from mailgrant.oauth.services.authorization import authorization_start
from tests.servers.oidc import ACCOUNTS

pytestmark = [pytest.mark.django_db, pytest.mark.integration]


def _finish_as(oidc, authorize_url: str, login: str):
    """A stranger's browser: signs in at the provider as `login`, lands on the callback."""
    redirect = oidc.login_headless(authorize_url, login=login, password=ACCOUNTS[login]["password"])
    parts = urlsplit(redirect)
    return Client().get(f"{parts.path}?{parts.query}")


def _snapshot(client_id: int):
    return [
        (g.pk, g.state, g.account, g.token_set, g.original_token_set, g.expires_at)
        for g in Grant.objects.filter(client_id=client_id).order_by("pk")
    ]


def _refused(response, pending_id: int, expected: str) -> None:
    text = response.content.decode()
    assert response.status_code == 400, text
    assert f"for {expected}" in text and "bob@example.test" in text
    pending = PendingAuthorization.objects.get(pk=pending_id)
    assert pending.outcome == PendingAuthorization.Outcome.FAILED
    assert expected in pending.message and "nothing was stored" in pending.message.lower()
    (failed,) = AuditEvent.objects.filter(action="oauth_client.validate_failed")
    assert expected in failed.message


def test_api_validate_for_an_account_refuses_another(api, oidc, oidc_client) -> None:
    client = oidc_client()
    started = api.post(f"/oauth-clients/{client.pk}/validate", {"login_hint": "alice@example.test"})
    assert started.status_code == 201, started.content
    body = started.json()
    response = _finish_as(oidc, body["authorize_url"], "bob@example.test")
    _refused(response, body["authorization_id"], "alice@example.test")
    assert not Grant.objects.filter(client=client).exists()
    polled = api.get(f"/authorizations/{body['authorization_id']}").json()
    assert polled["outcome"] == "failed" and "alice@example.test" in polled["message"]
    (failed,) = AuditEvent.objects.filter(action="oauth_client.validate_failed")
    assert failed.actor.startswith("apikey:")


def test_api_revalidate_of_a_grant_leaves_it_untouched(
    api, oidc, oidc_client, validate_headless
) -> None:
    client = oidc_client()
    grant = validate_headless(client).grant
    before = _snapshot(client.pk)
    started = api.post(
        f"/oauth-clients/{client.pk}/validate",
        {"grant": grant.pk, "login_hint": "alice@example.test"},
    ).json()
    response = _finish_as(oidc, started["authorize_url"], "bob@example.test")
    _refused(response, started["authorization_id"], "alice@example.test")
    assert _snapshot(client.pk) == before


def test_command_line_validate_for_an_account_refuses_another(oidc, oidc_client) -> None:
    client = oidc_client()
    started = authorization_start(client=client, purpose="cli", login_hint="alice@example.test")
    response = _finish_as(oidc, started.url, "bob@example.test")
    _refused(response, started.pending.pk, "alice@example.test")
    assert not Grant.objects.filter(client=client).exists()


def test_api_mailbox_authorize_refuses_another_account(api, oidc, oidc_client) -> None:
    client = oidc_client()
    created = api.post(
        "/mailboxes",
        {"name": "support", "host": "imap.example.test", "port": 993,
         "username": "alice@example.test", "oauth_client": client.pk},
    )  # fmt: skip
    assert created.status_code == 201, created.content
    mailbox_id = created.json()["id"]
    started = api.post(f"/mailboxes/{mailbox_id}/authorize").json()
    before = _snapshot(client.pk)
    response = _finish_as(oidc, started["authorize_url"], "bob@example.test")
    _refused(response, started["authorization_id"], "alice@example.test")
    assert _snapshot(client.pk) == before
    grant = Mailbox.objects.get(pk=mailbox_id).grant
    assert grant is not None and grant.state == Grant.State.UNAUTHORIZED and not grant.tokens()


def test_the_expected_account_itself_is_accepted_whatever_its_case(api, oidc, oidc_client) -> None:
    client = oidc_client()
    started = api.post(f"/oauth-clients/{client.pk}/validate", {"login_hint": "Alice@Example.TEST"})
    response = _finish_as(oidc, started.json()["authorize_url"], "alice@example.test")
    assert response.status_code == 200, response.content
    assert "Authorized as alice@example.test" in response.content.decode()
    assert Grant.objects.get(client=client).account == "alice@example.test"
