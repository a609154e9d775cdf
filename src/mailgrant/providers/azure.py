"""Microsoft Entra ID (Azure AD): Microsoft 365 / Exchange Online mailboxes."""

from mailgrant.providers.base import GUID, MAILBOX, USER, ErrorReason, Provider

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
    secret_location="Entra ID > App registrations > the app > Certificates & secrets",
    error_hints={
        "AADSTS7000222": "The client secret has expired: create a new one at the provider.",
    },
    # Microsoft identity platform's AADSTS codes (learn.microsoft.com/entra/identity-platform/
    # reference-error-codes), as its token endpoint puts them in error_description.
    error_reasons={
        "AADSTS700082": ErrorReason(
            "refresh.expired_inactive",
            "Microsoft let the refresh token expire after 90 days without use: validate the "
            "grant again. While a worker runs, mailgrant's keep-alive refresh prevents this.",
        ),
        "AADSTS50173": ErrorReason(
            "refresh.revoked",
            "Microsoft revoked the refresh token (a password change, or an administrator "
            "revoked the user's sessions): validate the grant again.",
        ),
        "AADSTS50076": ErrorReason(
            "refresh.mfa_required",
            "The tenant now requires multi-factor authentication for this account: validate "
            "the grant again, signing in with MFA.",
        ),
        "AADSTS50079": ErrorReason(
            "refresh.mfa_required",
            "The account must register for multi-factor authentication: have the user sign in "
            "once at https://aka.ms/mfasetup, then validate the grant again.",
        ),
        "AADSTS65001": ErrorReason(
            "refresh.consent_required",
            "Consent to the app's permissions is missing or was withdrawn: validate again, or "
            "have a tenant administrator grant consent (Entra ID > Enterprise applications > "
            "the app > Permissions > Grant admin consent).",
        ),
        "AADSTS53003": ErrorReason(
            "refresh.conditional_access",
            "A Conditional Access policy of the tenant blocks this sign-in (e.g. by location or "
            "device): the tenant's sign-in logs name the policy; have its administrator exclude "
            "this app or this server's address, then validate again.",
        ),
        "AADSTS7000222": ErrorReason(
            "client.secret_expired",
            "The client secret has expired: create a new one in Entra ID > App registrations > "
            "the app > Certificates & secrets, and enter it (and its expiry) on this client.",
        ),
        "AADSTS7000215": ErrorReason(
            "client.invalid_client",
            "Microsoft refused the client secret: enter the secret's Value (not its Secret ID) "
            "from Entra ID > App registrations > the app > Certificates & secrets.",
        ),
        "AADSTS700016": ErrorReason(
            "client.wrong_app_or_tenant",
            "No application with this client ID exists in the tenant: check the Application "
            "(client) ID, and the tenant (a single-tenant app needs its own tenant ID, not "
            "organizations or common).",
        ),
        "AADSTS9002313": ErrorReason(
            "request.malformed",
            "Microsoft found the token request malformed: check the client's scopes and token "
            "URL (a v2.0 endpoint, scopes such as https://outlook.office.com/IMAP.AccessAsUser.All).",
        ),
    },
)
