"""Microsoft Entra ID (Azure AD): Microsoft 365 / Exchange Online mailboxes."""

from mailgrant.providers.base import GUID, MAILBOX, USER, Provider

_BASE = "https://login.microsoftonline.com/{tenant}"

PROVIDER = Provider(
    id="azure",
    name="Microsoft (Azure)",
    authorize_url=f"{_BASE}/oauth2/v2.0/authorize",
    token_url=f"{_BASE}/oauth2/v2.0/token",
    userinfo_url="https://graph.microsoft.com/oidc/userinfo",
    jwks_uri=f"{_BASE}/discovery/v2.0/keys",
    # Multi-tenant endpoints (organizations, common) issue tokens whose iss names the user's
    # own tenant: it must match the token's tid claim.
    issuer="https://login.microsoftonline.com/{tenantid}/v2.0",
    scopes={
        MAILBOX: (
            "https://outlook.office.com/IMAP.AccessAsUser.All",
            "https://outlook.office.com/POP.AccessAsUser.All",
            "https://outlook.office.com/SMTP.Send",
            "offline_access",
            "openid",
            "email",
        ),
        USER: ("openid", "profile", "email"),
    },
    username_attribute={MAILBOX: "email", USER: "preferred_username"},
    token_endpoint_auth_method="client_secret_post",
    default_tenant="organizations",
    icon="microsoft",
    tenant_pins_issuer=True,
    # Multi-tenant endpoints admit any tenant: tid names the person's.
    organization_claim="tid",
    organization_name="tenant ID (a GUID)",
    organization_pattern=GUID,
    error_hints={
        "AADSTS7000222": "The client secret has expired: create a new one at the provider.",
    },
)
