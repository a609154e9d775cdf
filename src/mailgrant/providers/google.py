"""Google (Gmail, Google Workspace)."""

from mailgrant.providers.base import MAILBOX, USER, Provider

PROVIDER = Provider(
    id="google",
    name="Google",
    authorize_url="https://accounts.google.com/o/oauth2/v2/auth",
    token_url="https://oauth2.googleapis.com/token",
    userinfo_url="https://openidconnect.googleapis.com/v1/userinfo",
    jwks_uri="https://www.googleapis.com/oauth2/v3/certs",
    issuer="https://accounts.google.com",
    scopes={
        MAILBOX: ("https://mail.google.com/", "openid", "email"),
        USER: ("openid", "profile", "email"),
    },
    # Google returns a refresh token only with access_type=offline, and on a repeated consent
    # only when prompt=consent forces the consent screen again.
    authorize_params={MAILBOX: {"access_type": "offline", "prompt": "consent"}},
    username_attribute={MAILBOX: "email", USER: "email"},
    token_endpoint_auth_method="client_secret_post",
    icon="google",
    # Google answers a repeated consent without a refresh token unless prompt=consent forced
    # the consent screen; the one held for the same account still works.
    reconsent_keeps_refresh_token=True,
    # A Google Workspace account's ID token names its domain in hd; consumer accounts have none.
    organization_claim="hd",
    organization_name="hosted domain (e.g. example.com)",
    organization_pattern=r"(?i)(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}",
)
