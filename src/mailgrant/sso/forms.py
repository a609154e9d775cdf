"""The client form with its sign-in half: one form, as the seed's page has it. The sign-in
fields are SignIn's own (their labels, choices and help), kept beside the client's."""

from __future__ import annotations

import re
from typing import Any

from django import forms
from django.contrib.admin.widgets import FilteredSelectMultiple
from django.core.exceptions import ValidationError

from mailgrant.common.validation import model_errors
from mailgrant.oauth.forms import OAuthClientForm
from mailgrant.sso.icons import ICONS, MAX_IMAGE_BYTES, IconInvalid, icon_data_uri
from mailgrant.sso.models import SignIn
from mailgrant.sso.selectors import SIGN_IN_FIELDS, sign_in_of
from mailgrant.sso.services.clients import sign_in_check

SIGN_IN_FORM_FIELDS = (*SIGN_IN_FIELDS, "related_ldaps")
_SIGN_IN = forms.fields_for_model(
    SignIn,
    fields=SIGN_IN_FORM_FIELDS,
    widgets={
        "user_create_expression": forms.Textarea(attrs={"rows": 3, "cols": 80}),
        "user_fields": forms.Textarea(attrs={"rows": 4, "cols": 60}),
        "related_ldaps": FilteredSelectMultiple("Related LDAPs", is_stacked=False),
    },
)


class NamesField(forms.CharField):
    """A list of names, typed separated by commas, spaces or lines."""

    def prepare_value(self, value: Any) -> Any:
        return ", ".join(value) if isinstance(value, list) else value

    def to_python(self, value: Any) -> list[str]:  # type: ignore[override]
        return [n for n in re.split(r"[\s,]+", str(super().to_python(value) or "")) if n]


class ClientWithSignInForm(OAuthClientForm):
    user_data_source = _SIGN_IN["user_data_source"]
    username_attribute = _SIGN_IN["username_attribute"]
    user_fields = _SIGN_IN["user_fields"]
    user_create_expression = _SIGN_IN["user_create_expression"]
    email_verified_required = _SIGN_IN["email_verified_required"]
    allowed_organizations = NamesField(
        label="Allowed organizations",
        required=False,
        help_text=SignIn._meta.get_field("allowed_organizations").help_text
        + " Separate them by commas.",
    )
    login_button_caption = _SIGN_IN["login_button_caption"]
    login_button_icon = _SIGN_IN["login_button_icon"]
    related_ldaps = _SIGN_IN["related_ldaps"]
    login_button_upload = forms.FileField(
        label="Login Button Icon image",
        required=False,
        help_text=f"PNG, JPEG, GIF or WebP up to {MAX_IMAGE_BYTES // 1024} KB; shown instead "
        "of the named icon.",
    )
    login_button_image_clear = forms.BooleanField(label="Remove the uploaded image", required=False)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.sign_in = sign_in_of(client=self.instance)
        self.fields[
            "login_button_icon"
        ].help_text = f"A named icon: {', '.join(ICONS)}. Empty: the provider's."
        if self.sign_in.pk is not None:
            for name in SIGN_IN_FORM_FIELDS:
                value = getattr(self.sign_in, name)
                self.initial[name] = list(value.all()) if name == "related_ldaps" else value

    def clean_login_button_upload(self) -> str:
        upload = self.cleaned_data.get("login_button_upload")
        if not upload:
            return ""
        try:
            return icon_data_uri(upload.read(MAX_IMAGE_BYTES + 1))
        except IconInvalid as exc:
            raise ValidationError(str(exc)) from None

    def _post_clean(self) -> None:
        for name in SIGN_IN_FIELDS:
            if name in self.cleaned_data:
                setattr(self.sign_in, name, self.cleaned_data[name])
        if self.cleaned_data.get("login_button_upload"):
            self.sign_in.login_button_image = self.cleaned_data["login_button_upload"]
        elif self.cleaned_data.get("login_button_image_clear"):
            self.sign_in.login_button_image = ""
        super()._post_clean()
        if self.errors:
            return
        for name, message in model_errors(self.sign_in, exclude=["client"]).items():
            self.add_error(name if name in self.fields else None, message)

    def check_errors(self) -> dict[str, str]:
        return {
            **sign_in_check(sign_in=self.sign_in, provider=self.instance.provider),
            **super().check_errors(),
        }
