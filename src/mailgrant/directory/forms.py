from typing import Any

from django import forms

from mailgrant.directory.models import LdapDirectory
from mailgrant.directory.services.directories import (
    ldap_directory_check,
    ldap_directory_password_errors,
)


class LdapDirectoryForm(forms.ModelForm):
    # Write-only, like an OAuth client's secret: never rendered back, not even as dots.
    bind_password = forms.CharField(
        label="Bind password",
        required=False,
        strip=False,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
    )

    class Meta:
        model = LdapDirectory
        fields = [
            "name",
            "status",
            "server_uri",
            "security",
            "verify_ssl",
            "ca_certificate",
            "bind_dn",
            "base_dn",
            "user_filter",
            "disabled_filter",
            "attribute_map",
            "sync_interval",
            "show_in_login",
        ]
        widgets = {
            "server_uri": forms.TextInput(attrs={"size": 60}),
            "bind_dn": forms.TextInput(attrs={"size": 60}),
            "base_dn": forms.TextInput(attrs={"size": 60}),
            "user_filter": forms.TextInput(attrs={"size": 80}),
            "disabled_filter": forms.TextInput(attrs={"size": 80}),
            "ca_certificate": forms.Textarea(attrs={"rows": 4, "cols": 70}),
            "attribute_map": forms.Textarea(attrs={"rows": 6, "cols": 60}),
        }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        has_password = bool(self.instance.pk and self.instance.bind_password)
        self.fields["bind_password"].help_text = (
            "A password is stored (encrypted). Leave empty to keep it; type a new one to "
            "replace it. A change of server URI, security, CA certificate or Verify SSL off "
            "needs it typed again."
            if has_password
            else "Stored encrypted; it is never shown again. Empty with an empty bind DN: "
            "anonymous bind."
        )

    def _post_clean(self) -> None:
        super()._post_clean()  # type: ignore[misc]
        if self.errors:
            return
        errors = ldap_directory_check(directory=self.instance)
        errors.update(
            ldap_directory_password_errors(
                directory=self.instance, bind_password=self.cleaned_data.get("bind_password")
            )
        )
        for name, message in errors.items():
            self.add_error(name if name in self.fields else None, message)
