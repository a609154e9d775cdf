"""Any OAuth2 / OpenID Connect provider: endpoints entered by the admin or found by discovery."""

from mailgrant.providers.base import MAILBOX, USER, Provider

PROVIDER = Provider(
    id="generic",
    name="Generic / OIDC",
    scopes={
        MAILBOX: ("openid", "email", "offline_access"),
        USER: ("openid", "profile", "email"),
    },
    username_attribute={MAILBOX: "email", USER: "preferred_username"},
    token_endpoint_auth_method="client_secret_basic",
    uses_discovery=True,
)
