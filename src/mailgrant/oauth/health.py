"""The reasons a grant or a client is not ok (common.health), and how a refused token request
is classified: the provider's own codes first (its module's `error_reasons`), then OAuth's.

A `refresh.*` or `grant.*` reason means the grant is dead until validated again: no refresh
reaches the provider before that. A `client.*` reason is the client's fault (its secret, its
ID): no refresh is tried until the client is saved again. A transient reason is retried with
backoff, and the grant is ok again at the first success."""

from __future__ import annotations

from mailgrant.common.health import Health, Reason, reason_of, reason_register
from mailgrant.oauth.protocol import ProviderError
from mailgrant.providers import get_provider

_REVALIDATE = "Validate the grant again (Re-authorize)."

reason_register(
    Reason(
        "refresh.invalid_grant",
        Health.NEEDS_REAUTHORIZATION,
        "The provider refused the refresh token (expired, revoked or already used): " + _REVALIDATE,
    ),
    Reason(
        "refresh.revoked",
        Health.NEEDS_REAUTHORIZATION,
        "The refresh token was revoked (by the account, an administrator or a password "
        "change): " + _REVALIDATE,
    ),
    Reason(
        "refresh.expired_inactive",
        Health.NEEDS_REAUTHORIZATION,
        "The refresh token expired after a long time without use: " + _REVALIDATE,
    ),
    Reason(
        "refresh.mfa_required",
        Health.NEEDS_REAUTHORIZATION,
        "The account must now sign in with multi-factor authentication: " + _REVALIDATE,
    ),
    Reason(
        "refresh.consent_required",
        Health.NEEDS_REAUTHORIZATION,
        "Consent to the app's permissions is missing or was withdrawn: " + _REVALIDATE,
    ),
    Reason(
        "refresh.interaction_required",
        Health.NEEDS_REAUTHORIZATION,
        "The provider wants the account to sign in again in a browser: " + _REVALIDATE,
    ),
    Reason(
        "refresh.conditional_access",
        Health.NEEDS_REAUTHORIZATION,
        "A policy of the account's organization blocks this sign-in: have its administrator "
        "allow it, then validate the grant again.",
    ),
    Reason(
        "refresh.no_refresh_token",
        Health.NEEDS_REAUTHORIZATION,
        "The grant holds no refresh token: validate it again with offline access "
        "(offline_access, or Google's access_type=offline).",
    ),
    Reason(
        "grant.not_authorized",
        Health.NEEDS_REAUTHORIZATION,
        "The grant has not been authorized yet: press Validate (Re-authorize).",
    ),
    Reason(
        "client.secret_expired",
        Health.FAILING,
        "The client secret has expired: create a new one at the provider and enter it (and "
        "its expiry) on the client.",
    ),
    Reason(
        "client.secret_expiring",
        Health.WARNING,
        "The client secret expires soon: create a new one at the provider and enter it (and "
        "its expiry) on the client.",
    ),
    Reason(
        "client.invalid_client",
        Health.FAILING,
        "The provider refused the client's credentials: check the client ID and secret.",
    ),
    Reason(
        "client.wrong_app_or_tenant",
        Health.FAILING,
        "The provider knows no such application here: check the client ID and the tenant.",
    ),
    Reason(
        "client.disabled",
        Health.DISABLED,
        "The client is disabled: enable it to use its grants again.",
    ),
    Reason(
        "request.malformed",
        Health.FAILING,
        "The provider found the token request malformed: check the client's scopes and endpoints.",
    ),
    Reason(
        "client.endpoints_missing",
        Health.FAILING,
        "The client has no token endpoint: enter its URLs or its issuer (for discovery).",
    ),
    Reason(
        "provider.unavailable",
        Health.FAILING,
        "The provider answered that it is overloaded or failing (HTTP 5xx or 429). mailgrant "
        "tries again with backoff.",
        transient=True,
    ),
    Reason(
        "provider.error",
        Health.FAILING,
        "The provider refused the refresh with an error mailgrant does not know (the message "
        "has it). mailgrant tries again with backoff.",
        transient=True,
    ),
)

# OAuth's own error codes (RFC 6749 5.2, OpenID Connect Core 3.1.2.6), for any provider.
_OAUTH_ERRORS = {
    "invalid_grant": "refresh.invalid_grant",
    "interaction_required": "refresh.interaction_required",
    "login_required": "refresh.interaction_required",
    "consent_required": "refresh.consent_required",
    "invalid_client": "client.invalid_client",
    "unauthorized_client": "client.invalid_client",
    "invalid_request": "request.malformed",
    "invalid_scope": "request.malformed",
}


def refresh_failure_reason(*, provider_id: str, exc: ProviderError) -> tuple[Reason, str]:
    """The reason a refused or failed token request gives the grant, and its hint (the
    provider's own words when it has them)."""
    if exc.transient:
        if exc.status is not None:
            return reason_of("provider.unavailable"), ""
        return reason_of("provider.unreachable"), ""
    found = get_provider(provider_id).error_reason(
        error=exc.error, description=exc.description, code=exc.aadsts
    )
    if found is not None:
        return reason_of(found.reason), found.hint
    code = _OAUTH_ERRORS.get(exc.error)
    if code is None and exc.needs_reauthorization:
        code = "refresh.invalid_grant"
    return reason_of(code or "provider.error"), ""


def reason_stops_refresh(reason: Reason) -> bool:
    """Whether no refresh is tried again before someone acts (validates the grant, saves the
    client): trying would only be refused again."""
    return not reason.transient


def reason_is_the_clients(reason: Reason) -> bool:
    """A reason that is the client's fault: the client's own health shows it too."""
    return reason.code.startswith("client.") and reason.code != "client.disabled"
