"""Single sign-on: who signed in through which client."""

from __future__ import annotations

from django.conf import settings
from django.db import models


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
