"""What a provider preset declares. Django-free: presets are plain data."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

MAILBOX = "mailbox"
USER = "user"

GUID = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
_GUID = re.compile(GUID)
# What every provider's error codes mean for the administrator.
COMMON_ERROR_HINTS = {"invalid_client": "Check the client ID and secret."}


@dataclass(frozen=True)
class ErrorReason:
    """What a provider's own error code means: the stable reason code (common.health, registered
    by oauth.health) and the provider's words for the fix ("" keeps the reason's own hint)."""

    reason: str
    hint: str = ""


@dataclass(frozen=True)
class Provider:
    id: str
    name: str
    # Endpoint templates; "{tenant}" is filled from the client's tenant (azure).
    authorize_url: str = ""
    token_url: str = ""
    userinfo_url: str = ""
    jwks_uri: str = ""
    # The ID token's expected issuer; "{tenantid}" means the token's own `tid` claim.
    issuer: str = ""
    scopes: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    # Extra authorize parameters by client type, sent on every authorization.
    authorize_params: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    username_attribute: Mapping[str, str] = field(default_factory=dict)
    token_endpoint_auth_method: str = "client_secret_basic"
    default_tenant: str = ""
    uses_discovery: bool = False
    # The sign-in button's icon (static/mailgrant/icons/<icon>.svg) unless the admin picks one.
    icon: str = "key"
    # The administrator's next step, by the provider's own error code (AADSTS...) or OAuth's.
    error_hints: Mapping[str, str] = field(default_factory=dict)
    # A refused token request classified, by the provider's own code (AADSTS...), by
    # "error: description" (an OAuth error whose description tells variants apart), or by
    # the OAuth error alone; most specific first (`error_reason`).
    error_reasons: Mapping[str, ErrorReason] = field(default_factory=dict)
    # Where the administrator makes a new client secret (the secret-expiry hints name it).
    secret_location: str = "the provider's settings for this application"
    # Whether a tenant given as an id pins the issuer: "{tenantid}" in `issuer` becomes it.
    tenant_pins_issuer: bool = False
    # A repeated consent may answer without a refresh token while the one held for the same
    # account still works: keep it.
    reconsent_keeps_refresh_token: bool = True
    # The ID token claim naming the person's organization at the provider (Google's hosted
    # domain, Microsoft's tenant), which a sign-in client's allowed organizations pin; what it
    # is called for the administrator, and the pattern a value must match. "" when there is none.
    organization_claim: str = ""
    organization_name: str = ""
    organization_pattern: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "scopes", MappingProxyType(dict(self.scopes)))
        object.__setattr__(self, "authorize_params", MappingProxyType(dict(self.authorize_params)))
        hints = {**COMMON_ERROR_HINTS, **self.error_hints}
        object.__setattr__(self, "error_hints", MappingProxyType(hints))
        object.__setattr__(self, "error_reasons", MappingProxyType(dict(self.error_reasons)))

    def default_scopes(self, client_type: str) -> tuple[str, ...]:
        return self.scopes.get(client_type, ())

    def extra_authorize_params(self, client_type: str) -> Mapping[str, str]:
        return self.authorize_params.get(client_type, {})

    def error_hint(self, *codes: str | None) -> str:
        """The hint for the first of `codes` (most specific first) that has one, else ""."""
        return next((self.error_hints[c] for c in codes if c and c in self.error_hints), "")

    def error_reason(
        self, *, error: str, description: str = "", code: str | None = None
    ) -> ErrorReason | None:
        """How this provider classifies a refused token request: by its own `code` (e.g.
        AADSTS700082), else the OAuth `error` with its `description`, else the error alone."""
        for key in (code, f"{error}: {description.strip()}", error):
            if key and key in self.error_reasons:
                return self.error_reasons[key]
        return None

    def organization_check(self, value: str) -> str:
        """Why `value` cannot be one of a client's allowed organizations; "" when it can."""
        if not self.organization_claim:
            return (
                f"{self.name} names no organization in its tokens; pin one in the user create "
                "expression instead"
            )
        if not re.fullmatch(self.organization_pattern, value):
            return f"{value!r} is not a {self.organization_name}"
        return ""

    def issuer_for(self, *, issuer: str, tenant: str) -> str:
        """The ID token's expected issuer for a client of `tenant`."""
        if self.tenant_pins_issuer and _GUID.fullmatch(tenant):
            return issuer.replace("{tenantid}", tenant.lower())
        return issuer

    def issuer_matches(self, *, expected: str, iss: str) -> bool:
        """Whether an answer's `iss` (RFC 9207) is the expected issuer; "{tenantid}" in it
        stands for any tenant (the token's own tid is checked with the ID token)."""
        if "{tenantid}" in expected:
            prefix, _, suffix = expected.partition("{tenantid}")
            return iss.startswith(prefix) and iss.endswith(suffix)
        return iss.rstrip("/") == expected.rstrip("/")
