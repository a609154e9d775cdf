"""Google (Gmail, Google Workspace)."""

from mailgrant.providers.base import MAILBOX, USER, ErrorReason, Provider

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
    secret_location="Google Cloud console > APIs & Services > Credentials > the OAuth client",
    # Google answers a repeated consent without a refresh token unless prompt=consent forced
    # the consent screen; the one held for the same account still works.
    reconsent_keeps_refresh_token=True,
    # A Google Workspace account's ID token names its domain in hd; consumer accounts have none.
    organization_claim="hd",
    organization_name="hosted domain (e.g. example.com)",
    organization_pattern=r"(?i)(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}",
    # Google's token endpoint answers every dead refresh token with the same invalid_grant
    # (developers.google.com/identity/protocols/oauth2#expiration): the hint names the causes.
    error_reasons={
        "invalid_grant: Token has been expired or revoked.": ErrorReason(
            "refresh.revoked",
            "Google refused the refresh token: either the account revoked mailgrant's access "
            "(myaccount.google.com > Security > Third-party apps) or changed its password, or "
            "the app's OAuth consent screen is in Testing publishing status, where refresh "
            "tokens die 7 days after consent. To tell them apart: if the grant died about 7 "
            "days after it was validated, publish the app (Google Cloud console > APIs & "
            "Services > OAuth consent screen > Publish app). Then validate the grant again.",
        ),
        "invalid_client: Unauthorized": ErrorReason(
            "client.invalid_client",
            "Google refused the client secret: copy it again from Google Cloud console > APIs & "
            "Services > Credentials > the OAuth client.",
        ),
        "invalid_client: The OAuth client was not found.": ErrorReason(
            "client.wrong_app_or_tenant",
            "Google knows no OAuth client with this client ID: copy it again from Google Cloud "
            "console > APIs & Services > Credentials (the project may have been deleted).",
        ),
    },
)
