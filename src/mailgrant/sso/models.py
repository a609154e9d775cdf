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
    user_create_expression = models.TextField(blank=True)
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
    """A person as (client, subject): a renamed email still finds the same user."""

    client = models.ForeignKey(
        "oauth.OAuthClient", on_delete=models.CASCADE, related_name="identities"
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
            models.UniqueConstraint(fields=["client", "subject"], name="one_user_per_identity"),
        ]

    def __str__(self) -> str:
        return f"{self.client.name}: {self.subject}"
