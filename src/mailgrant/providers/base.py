"""What a provider preset declares. Django-free: presets are plain data."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

MAILBOX = "mailbox"
USER = "user"


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

    def __post_init__(self) -> None:
        object.__setattr__(self, "scopes", MappingProxyType(dict(self.scopes)))
        object.__setattr__(self, "authorize_params", MappingProxyType(dict(self.authorize_params)))

    def default_scopes(self, client_type: str) -> tuple[str, ...]:
        return self.scopes.get(client_type, ())

    def extra_authorize_params(self, client_type: str) -> Mapping[str, str]:
        return self.authorize_params.get(client_type, {})
