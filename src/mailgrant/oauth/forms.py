from typing import Any

from django import forms
from django.core.exceptions import ValidationError

from mailgrant.oauth.models import OAuthClient
from mailgrant.oauth.selectors import OAUTH_CLIENT_FIELDS
from mailgrant.oauth.services.clients import oauth_client_check
from mailgrant.providers import PROVIDERS
from mailgrant.sso.icons import ICONS, MAX_IMAGE_BYTES, IconInvalid, icon_data_uri


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
    login_button_upload = forms.FileField(
        label="Login Button Icon image",
        required=False,
        help_text=f"PNG, JPEG, GIF or WebP up to {MAX_IMAGE_BYTES // 1024} KB; shown instead "
        "of the named icon.",
    )
    login_button_image_clear = forms.BooleanField(label="Remove the uploaded image", required=False)

    class Meta:
        model = OAuthClient
        fields = [*OAUTH_CLIENT_FIELDS, "related_ldaps"]
        widgets = {
            "scope": forms.TextInput(attrs={"size": 80}),
            "user_create_expression": forms.Textarea(attrs={"rows": 3, "cols": 80}),
            "user_fields": forms.Textarea(attrs={"rows": 4, "cols": 60}),
        }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        has_secret = bool(self.instance.pk and self.instance.client_secret)
        self.fields["client_secret"].help_text = (
            "A secret is stored (encrypted). Leave empty to keep it; type a new one to replace it."
            if has_secret
            else "Stored encrypted; it is never shown again."
        )
        self.fields["provider"].help_text = "; ".join(
            f"{p.name}: {'discovery or your URLs' if p.uses_discovery else 'preset endpoints'}"
            for p in PROVIDERS.values()
        )

        self.fields[
            "login_button_icon"
        ].help_text = f"A named icon: {', '.join(ICONS)}. Empty: the provider's."

    def clean_login_button_upload(self) -> str:
        upload = self.cleaned_data.get("login_button_upload")
        if not upload:
            return ""
        try:
            return icon_data_uri(upload.read(MAX_IMAGE_BYTES + 1))
        except IconInvalid as exc:
            raise ValidationError(str(exc)) from None

    def clean_scope_separator(self) -> str:
        return self.cleaned_data.get("scope_separator") or " "

    def _post_clean(self) -> None:
        super()._post_clean()  # type: ignore[misc]
        if self.errors:
            return
        if self.cleaned_data.get("login_button_upload"):
            self.instance.login_button_image = self.cleaned_data["login_button_upload"]
        elif self.cleaned_data.get("login_button_image_clear"):
            self.instance.login_button_image = ""
        for field, message in oauth_client_check(client=self.instance).items():
            self.add_error(field if field in self.fields else None, message)
