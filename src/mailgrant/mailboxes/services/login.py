"""Logging in to a mailbox's server: a password, or a token from the mailbox's grant (a refused
token is refreshed once and the login retried once)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TypeVar

from django.conf import settings

from mailgrant.common.errors import NeedsAdmin, PeerFailed, ServiceError
from mailgrant.common.fields import reveal
from mailgrant.common.health import Health
from mailgrant.mailboxes.models import Mailbox
from mailgrant.mailboxes.protocol import sasl
from mailgrant.mailboxes.protocol.transport import (
    AuthRefused,
    Endpoint,
    Login,
    MailError,
    PasswordLogin,
    TokenLogin,
)
from mailgrant.mailboxes.selectors import mailbox_grant
from mailgrant.oauth.models import Grant
from mailgrant.oauth.services.tokens import access_token_for, grant_refresh

log = logging.getLogger(__name__)

NEEDS_REAUTH = Health.NEEDS_REAUTHORIZATION.value


T = TypeVar("T")


def mailbox_endpoint(*, mailbox: Mailbox) -> Endpoint:
    return Endpoint(
        host=mailbox.host,
        port=mailbox.port,
        security=mailbox.security,
        timeout=float(settings.MAILGRANT_MAIL_TIMEOUT),
    )


def mailbox_login(*, mailbox: Mailbox) -> tuple[Login, Grant | None]:
    """How `mailbox` logs in, and the grant behind it; a login that cannot succeed (no
    password, a disabled client, a grant to authorize again) fails here, contacting nobody."""
    return _login(mailbox)


def _login(mailbox: Mailbox) -> tuple[Login, Grant | None]:
    if mailbox.auth_method == Mailbox.AuthMethod.PASSWORD:
        if not mailbox.password:
            raise NeedsAdmin("This mailbox has no password stored.", code="config")
        return PasswordLogin(mailbox.login_username, reveal(mailbox.password)), None
    client = mailbox.oauth_client
    if client is None:
        raise NeedsAdmin("Choose the OAuth client this mailbox logs in with.", code="config")
    if not client.is_enabled:
        raise NeedsAdmin(
            f"OAuth client {client.name} is disabled: nothing was fetched or sent.",
            code="client_disabled",
        )
    grant = mailbox_grant(mailbox=mailbox)
    if grant is None:
        raise NeedsAdmin(
            f"OAuth client {client.name} is not authorized yet: press Authorize.",
            code="not_authorized",
        )
    if grant.state == Grant.State.REAUTHORIZATION_REQUIRED or grant.health == NEEDS_REAUTH:
        # Fails here, before any connection: neither the mail server nor the provider sees a
        # dead token again until the account authorizes anew.
        raise NeedsAdmin(
            f"Grant {grant} needs to be validated again (press Authorize)"
            + (f": {grant.last_error}" if grant.last_error else "."),
            code="reauthorization_required",
        )
    mechanism = sasl.MECHANISMS[mailbox.sasl_mechanism]
    return TokenLogin(
        mailbox.login_username,
        mechanism,
        lambda: access_token_for(grant=grant, min_valid_seconds=60).access_token,
    ), grant


def with_mailbox_login(
    *, mailbox: Mailbox, work: Callable[[Login], T], on_refresh: Callable[[], None] | None = None
) -> T:
    """Run `work` with the mailbox's login; a refused token is refreshed once and retried once."""
    login, grant = _login(mailbox)
    try:
        return work(login)
    except AuthRefused as exc:
        if grant is None or exc.transient:
            raise
        log.info(
            "Mailbox %s: token refused (%s); refreshing once and retrying", mailbox.pk, exc.message
        )
        grant_refresh(grant=grant, force=True)
        if on_refresh:
            on_refresh()
        return work(login)


def mailbox_error_of(exc: Exception) -> ServiceError:
    """The service error of what a mail server (or the grant behind the login) answered: a
    refused login with the server's details, a server that is down or busy as transient."""
    if isinstance(exc, ServiceError):
        return exc
    if isinstance(exc, AuthRefused):
        return PeerFailed(exc.message, code="auth", transient=exc.transient, details=exc.details)
    if isinstance(exc, MailError):
        return PeerFailed(exc.message, code=exc.kind, transient=exc.transient)
    raise exc
