"""The client form of the admin: the fields of the client, the secret write-only."""

from typing import Any

from django import forms

from mailgrant.oauth.models import OAuthClient
from mailgrant.oauth.selectors import OAUTH_CLIENT_FIELDS
from mailgrant.oauth.services.clients import oauth_client_check
from mailgrant.providers import PROVIDERS

RETARGET_HELP = (
    " Changing where the secrets go (an endpoint, the issuer, tenant, provider or proxy, or "
    "switching off Verify SSL) clears the stored secret unless you type it here in the same "
    "change, and every grant of this client must be validated again."
)


class OAuthClientForm(forms.ModelForm):
    # Write-only: never rendered back (render_value=False), not even as dots.
    client_secret = forms.CharField(
        label="Client Secret",
        required=False,
        strip=False,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
    )
    scope_separator = forms.CharField(
        label="Scope Separator Char",
        required=False,
        strip=False,
        max_length=5,
        initial=" ",
        help_text="Joins the scopes in the authorize request; empty means a space.",
    )

    class Meta:
        model = OAuthClient
        fields = list(OAUTH_CLIENT_FIELDS)
        widgets = {"scope": forms.TextInput(attrs={"size": 80})}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        has_secret = bool(self.instance.pk and self.instance.client_secret)
        self.fields["client_secret"].help_text = (
            "A secret is stored (encrypted). Leave empty to keep it; type a new one to replace it."
            if has_secret
            else "Stored encrypted; it is never shown again."
        ) + RETARGET_HELP
        self.fields["provider"].help_text = "; ".join(
            f"{p.name}: {'discovery or your URLs' if p.uses_discovery else 'preset endpoints'}"
            for p in PROVIDERS.values()
        )

    def clean_scope_separator(self) -> str:
        return self.cleaned_data.get("scope_separator") or " "

    def _post_clean(self) -> None:
        super()._post_clean()  # type: ignore[misc]
        if self.errors:
            return
        for field, message in self.check_errors().items():
            self.add_error(field if field in self.fields else None, message)

    def check_errors(self) -> dict[str, str]:
        """How the fields go together, once each is valid (OIDC discovery where it applies)."""
        return oauth_client_check(client=self.instance)
