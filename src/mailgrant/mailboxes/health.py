"""Why a mailbox is not ok: the reasons a login, fetch, send or Test connection can fail with,
each with the fix in plain words, and the classification of what was raised into one of them.

The server strings matched here are the providers' own, as their documentation gives them;
a match only sharpens the reason and the hint, the server's words stay the message."""

from __future__ import annotations

import re
from dataclasses import dataclass

from mailgrant.common.errors import ServiceError
from mailgrant.common.health import Health, Reason, reason_of, reason_register
from mailgrant.mailboxes.protocol.transport import AuthRefused, MailError
from mailgrant.oauth import health as _oauth_health  # noqa: F401  # grant.*, client.* reasons

_AUTH_REFUSED_HINT = (
    "The {server} server refused the login. With a password: check the user name and the "
    "password (an app password where the provider wants one). With OAuth2: the account that "
    "authorized must be the mailbox's (or have access to it) and the client's scopes must "
    "include {protocol}; press Authorize again if the account or the scopes changed."
)

reason_register(
    *(
        Reason(
            f"{protocol}.auth_refused",
            Health.FAILING,
            _AUTH_REFUSED_HINT.format(server=protocol.upper(), protocol=protocol.upper()),
        )
        for protocol in ("imap", "pop3", "smtp")
    ),
    Reason(
        "imap.not_connected",
        Health.FAILING,
        'Exchange Online accepted the token but will not open the mailbox ("User is '
        'authenticated but not connected"): either the account that authorized is not the '
        "mailbox's (sign in as the mailbox, or as a user with Full Access to it, and press "
        "Authorize), or the app has no permission on the mailbox (for app-only access: "
        "New-ServicePrincipal, then Add-MailboxPermission -AccessRights FullAccess for it).",
    ),
    Reason(
        "smtp.auth_disabled",
        Health.FAILING,
        "Exchange Online has SMTP AUTH turned off (535 5.7.139). For this mailbox: Microsoft "
        "365 admin center > Users > the user > Mail > Manage email apps > Authenticated SMTP, "
        "or Set-CASMailbox -Identity <mailbox> -SmtpClientAuthenticationDisabled $false. For "
        'the whole tenant: Exchange admin center > Settings > Mail flow > untick "Turn off '
        'SMTP AUTH protocol for your organization", or Set-TransportConfig '
        "-SmtpClientAuthenticationDisabled $false. Security defaults block it too.",
    ),
    Reason(
        "gmail.imap_disabled",
        Health.FAILING,
        "Gmail refuses IMAP for this account: turn IMAP on in Gmail's settings (See all "
        "settings > Forwarding and POP/IMAP > Enable IMAP); in Google Workspace the "
        "administrator allows it under Apps > Google Workspace > Gmail > End User Access.",
    ),
    Reason(
        "mail.unavailable",
        Health.FAILING,
        "The server says it cannot log in now (its authentication backend is busy or down). "
        "mailgrant tries again with backoff.",
        transient=True,
    ),
    Reason(
        "mail.protocol",
        Health.FAILING,
        "The server answered something mailgrant cannot use, or broke off the connection: "
        "check that the host and port are this protocol's (not another service's). mailgrant "
        "tries again with backoff.",
        transient=True,
    ),
    Reason(
        "mail.folder",
        Health.FAILING,
        "The folder cannot be opened: check its name (as the server lists it) and that the "
        "account may read it.",
    ),
    Reason(
        "mail.too_large",
        Health.WARNING,
        "A message is larger than the server said or than mailgrant takes: it stays on the "
        "server (named in the last error); the others are fetched.",
    ),
    Reason(
        "grant.needs_reauthorization",
        Health.NEEDS_REAUTHORIZATION,
        "The provider no longer accepts this mailbox's authorization: press Authorize and sign "
        "in as the mailbox's account. Until then mailgrant contacts neither the provider nor "
        "the mail server for it.",
    ),
    Reason(
        "grant.refresh_failed",
        Health.FAILING,
        "The provider refused to refresh the token: the grant's last error says why. "
        "mailgrant tries again on the interval.",
    ),
    Reason(
        "mailbox.disabled",
        Health.DISABLED,
        "The mailbox is disabled: nothing is fetched or sent until it is enabled.",
    ),
    Reason(
        "config.missing",
        Health.FAILING,
        "The mailbox lacks a setting it needs (its password, or its OAuth client): Edit it.",
    ),
)

# Exchange Online, after an accepted XOAUTH2 login, to SELECT when the token's account may not
# open the mailbox ("BAD User is authenticated but not connected."). Microsoft Learn,
# "Authenticate an IMAP, POP or SMTP connection using OAuth" (service principal and
# mailbox permission steps), and Microsoft Q&A threads quoting the reply.
EXCHANGE_NOT_CONNECTED = "User is authenticated but not connected"
# Exchange Online's SMTP AUTH switched off, for the tenant or for the mailbox:
# "535 5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled for the
# Tenant. Visit https://aka.ms/smtp_auth_disabled for more information." (and "... for the
# Mailbox."). Microsoft Learn, "Enable or disable SMTP AUTH in Exchange Online"
# (learn.microsoft.com/exchange/clients-and-mobile-in-exchange-online/
# authenticated-client-smtp-submission), which https://aka.ms/smtp_auth_disabled opens.
EXCHANGE_SMTP_AUTH_DISABLED = re.compile(
    r"5\.7\.139\b.*SmtpClientAuthentication is disabled for the (Tenant|Mailbox)", re.I
)
# Gmail's refusal with IMAP off: "[ALERT] Your account is not enabled for IMAP use. Please
# visit your Gmail settings page and enable your account for IMAP access. (Failure)", and for
# a Workspace domain that turned it off, "[ALERT] IMAP access is disabled for your domain.
# Please contact your domain administrator for questions about this feature. (Failure)".
# Google's Gmail Help, "Add Gmail to another email client" (support.google.com/mail/answer/
# 7126229), "Make sure IMAP is turned on".
GMAIL_IMAP_DISABLED = re.compile(
    r"not enabled for IMAP use|IMAP access is disabled for your domain", re.I
)

# A grant's (or the login's) ServiceError code -> reason code.
_SERVICE_REASONS = {
    "reauthorization_required": "grant.needs_reauthorization",
    "not_authorized": "grant.not_authorized",
    "client_disabled": "client.disabled",
    "mailbox_disabled": "mailbox.disabled",
    "config": "config.missing",
    "provider_unreachable": "provider.unreachable",
    "refresh_in_progress": "provider.unreachable",
    "provider_error": "grant.refresh_failed",
    "endpoints_missing": "grant.refresh_failed",
}
_CONNECT_REASONS = {
    "refused": "connect.refused",
    "timeout": "connect.timeout",
    "dns": "connect.dns",
}


@dataclass(frozen=True)
class Failure:
    """What a failed mailbox exchange means: its reason, the hint to show (the reason's, or a
    sharper one), and the server's (or the service's) words, never a secret."""

    reason: Reason
    hint: str
    message: str

    @property
    def transient(self) -> bool:
        return self.reason.transient


def mailbox_failure_of(exc: Exception, *, protocol: str) -> Failure:
    """The failure `exc` (what a login, fetch, send or test raised: a MailError, AuthRefused
    with the server's words, a ServiceError from the grant or the settings) means for a
    mailbox of `protocol`."""
    message = getattr(exc, "message", "") or str(exc)
    if isinstance(exc, MailError):
        code = _mail_reason(exc, protocol=protocol)
    elif isinstance(exc, ServiceError):
        code = _SERVICE_REASONS.get(exc.code, "unexpected")
        if exc.code == "auth":  # a refused login already turned into a service error
            code = _auth_reason(message, protocol=protocol)
    else:
        code = "unexpected"
        message = f"unexpected error: {type(exc).__name__}"
    reason = reason_of(code)
    return Failure(reason=reason, hint=_hint(reason, exc), message=message)


def _mail_reason(exc: MailError, *, protocol: str) -> str:
    if EXCHANGE_NOT_CONNECTED.lower() in exc.message.lower():
        return "imap.not_connected"
    if isinstance(exc, AuthRefused):
        if exc.transient:
            return "mail.unavailable"
        return _auth_reason(exc.message, protocol=protocol)
    if exc.kind == "auth":
        return _auth_reason(exc.message, protocol=protocol)
    if exc.kind == "connect":
        return _CONNECT_REASONS.get(exc.cause, "connect.refused")
    if exc.kind == "tls":
        return "tls.failed"
    if exc.kind == "folder":
        return "mail.folder"
    if exc.kind == "too_large":
        return "mail.too_large"
    return "mail.protocol"


def _auth_reason(message: str, *, protocol: str) -> str:
    if EXCHANGE_SMTP_AUTH_DISABLED.search(message):
        return "smtp.auth_disabled"
    if GMAIL_IMAP_DISABLED.search(message):
        return "gmail.imap_disabled"
    if protocol not in ("imap", "pop3", "smtp"):
        protocol = "imap"
    return f"{protocol}.auth_refused"


def _hint(reason: Reason, exc: Exception) -> str:
    """The reason's hint, made sharper where the exchange says more."""
    if reason.code == "smtp.auth_disabled":
        found = EXCHANGE_SMTP_AUTH_DISABLED.search(getattr(exc, "message", ""))
        if found and found.group(1).lower() == "mailbox":
            return "SMTP AUTH is off for this mailbox. " + reason.hint
        if found:
            return "SMTP AUTH is off for the whole tenant. " + reason.hint
    if reason.code.endswith(".auth_refused") and isinstance(exc, AuthRefused) and exc.details:
        status = str(exc.details.get("status", ""))
        if status in ("400", "401"):
            return (
                "The server rejected the OAuth token itself (status "
                f"{status}): it may be for another account or lack the mail scope. " + reason.hint
            )
    return reason.hint
