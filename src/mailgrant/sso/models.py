"""Single sign-on: the sign-in settings of a user-type client, and who signed in through it."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class SignIn(models.Model):
    """The sign-in half of a client: where the person's data comes from, how a user is found
    or created, and the button on the login page (used when the client's type is user). One per
    client, kept whatever its type, so nothing typed is lost when the type changes."""

    class UserDataSource(models.TextChoices):
        ID_TOKEN = "id_token", "ID token claims"
        ENDPOINT = "endpoint", "User data endpoint"

    client = models.OneToOneField(
        "oauth.OAuthClient", primary_key=True, on_delete=models.CASCADE, related_name="sign_in"
    )
    user_data_source = models.CharField(
        max_length=20, choices=UserDataSource.choices, default=UserDataSource.ID_TOKEN
    )
    username_attribute = models.CharField(max_length=200, blank=True)
    user_fields = models.JSONField(
        default=dict, blank=True, help_text='User field <- claim, e.g. {"email": "email"}.'
    )
    user_create_expression = models.TextField(
        blank=True,
        help_text="CEL: who is admitted at a first sign-in (created, or linked to a Related "
        "LDAPs user), and with which fields. Empty: no one new.",
    )
    email_verified_required = models.BooleanField(
        "Require a verified email",
        default=True,
        help_text="When the username is the email claim, sign in only with email_verified true.",
    )
    allowed_organizations = models.JSONField(
        default=list,
        blank=True,
        help_text="Google: hosted domains (hd); Microsoft: tenant IDs (tid). Checked at every "
        "sign-in; empty: any.",
    )
    login_button_caption = models.CharField(max_length=200, blank=True)
    login_button_icon = models.CharField(
        max_length=200,
        blank=True,
        help_text="A named icon (google, microsoft, key, ...) or, after an upload, the image.",
    )
    # An uploaded button image, as a data: URI (small PNG / JPEG / GIF / WebP; never SVG).
    login_button_image = models.TextField(blank=True, editable=False)
    related_ldaps = models.ManyToManyField(
        "directory.LdapDirectory",
        blank=True,
        related_name="sign_ins",
        verbose_name="Related LDAPs",
        help_text="User type: a signing-in user is linked to the directory user with the same "
        "username instead of a new one being created.",
    )

    class Meta:
        verbose_name = "sign-in settings"
        verbose_name_plural = "sign-in settings"

    def __str__(self) -> str:
        return f"sign-in with {self.client}"


class SsoIdentity(models.Model):
    """A person as (client, issuer, subject): a renamed email still finds the same user, and a
    subject is unique only at its issuer (OpenID Connect Core 2), which on a multi-tenant
    endpoint names the tenant. An empty issuer (a link made by hand, or one older than the
    issuer) is taken by the first sign-in of that subject."""

    client = models.ForeignKey(
        "oauth.OAuthClient", on_delete=models.CASCADE, related_name="identities"
    )
    issuer = models.CharField(
        max_length=500,
        blank=True,
        help_text="The ID token's iss; empty: set by the first sign-in of this subject.",
    )
    subject = models.CharField(max_length=255)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="sso_identities"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    last_login_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["client__name", "subject"]
        verbose_name = "SSO identity"
        verbose_name_plural = "SSO identities"
        constraints = [
            models.UniqueConstraint(
                fields=["client", "issuer", "subject"], name="one_user_per_issuer_subject"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.client.name}: {self.subject}"
