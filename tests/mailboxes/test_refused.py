"""Tokens that Dovecot refuses after asking the provider: each reported clearly; an expired one
is refreshed once and the login retried once."""

import time

import httpx
import pytest

from mailgrant.common.errors import ServiceError
from mailgrant.common.fields import reveal
from mailgrant.mailboxes.services.fetch import mailbox_fetch
from mailgrant.mailboxes.services.test import mailbox_test
from mailgrant.oauth.models import Grant

pytestmark = [pytest.mark.integration, pytest.mark.django_db]


def _pretend_fresh(grant: Grant) -> None:
    """Make mailgrant believe the current token is good for an hour (as after clock skew or
    an early revocation at the provider): only the server's refusal can reveal it."""
    tokens = grant.tokens()
    data = tokens.to_dict() | {"expires_at": time.time() + 3600}
    Grant.objects.filter(pk=grant.pk).update(token_set=data)


def test_expired_token_is_refused_refreshed_and_retried(
    oidc, dovecot, make_mailbox, oidc_client, validate_headless
):
    oidc.set_access_token_ttl(2)
    try:
        grant = validate_headless(oidc_client()).grant
    finally:
        oidc.set_access_token_ttl(3600)
    time.sleep(3)  # expired at the provider
    _pretend_fresh(grant)
    mailbox = make_mailbox(grant=grant, username=grant.account)
    result = mailbox_test(mailbox=mailbox)
    assert result.ok, result.message
    assert result.refreshed
    assert "NO [AUTHENTICATIONFAILED]" in result.transcript
    assert "token refused: refreshed it once, retrying" in result.transcript
    grant.refresh_from_db()
    assert grant.refresh_count == 1 and grant.state == Grant.State.AUTHORIZED
    # A fetch with the refreshed token just works.
    assert mailbox_fetch(mailbox=mailbox).errors == []


def test_revoked_grant_is_reported_and_needs_validation(
    oidc, dovecot, make_mailbox, oidc_client, validate_headless
):
    client = oidc_client()
    grant = validate_headless(client).grant
    tokens = grant.tokens()
    # Revoking the refresh token revokes the whole grant at the provider.
    httpx.post(
        f"{oidc.issuer}/token/revocation",
        data={"token": tokens.refresh_token, "token_type_hint": "refresh_token"},
        auth=(client.client_id, reveal(client.client_secret)),
    ).raise_for_status()
    mailbox = make_mailbox(grant=grant, username=grant.account)
    result = mailbox_test(mailbox=mailbox)
    assert not result.ok
    assert "validate again" in result.message
    assert "AUTHENTICATIONFAILED" in result.transcript
    grant.refresh_from_db()
    assert grant.state == Grant.State.REAUTHORIZATION_REQUIRED
    with pytest.raises(ServiceError, match="validated again"):
        mailbox_fetch(mailbox=mailbox)
    mailbox.refresh_from_db()
    assert "validated again" in mailbox.last_error


def test_token_of_another_account_is_refused_with_the_servers_error(
    dovecot, make_mailbox, mail_grant
):
    mailbox = make_mailbox(grant=mail_grant, username="bob@example.test")
    result = mailbox_test(mailbox=mailbox)
    assert not result.ok
    assert "refused the XOAUTH2 token" in result.message
    assert result.details == {"status": "401", "schemes": "bearer", "scope": "mail"}
    assert result.refreshed  # refreshed once, retried once, still refused
    mail_grant.refresh_from_db()
    assert mail_grant.refresh_count == 1
    assert mail_grant.tokens().access_token not in result.transcript
