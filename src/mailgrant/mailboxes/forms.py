from typing import Any

from django import forms

from mailgrant.mailboxes.models import Mailbox
from mailgrant.mailboxes.services.mailboxes import mailbox_check

FIELDS = [
    "name",
    "direction",
    "protocol",
    "host",
    "port",
    "security",
    "username",
    "auth_method",
    "oauth_client",
    "grant",
    "sasl_mechanism",
    "smtp_username",
    "folder",
    "post_fetch_action",
    "enabled",
    "poll_interval",
]
DEFAULT_PORTS = {
    ("imap", "ssl"): 993,
    ("imap", "starttls"): 143,
    ("imap", "none"): 143,
    ("pop3", "ssl"): 995,
    ("pop3", "starttls"): 110,
    ("pop3", "none"): 110,
    ("smtp", "ssl"): 465,
    ("smtp", "starttls"): 587,
    ("smtp", "none"): 25,
}


class MailboxForm(forms.ModelForm):
    # Write-only, like the client secret: never rendered back.
    password = forms.CharField(
        required=False,
        strip=False,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text="Only for the password method. Stored encrypted; leave empty to keep it.",
    )

    class Meta:
        model = Mailbox
        fields = [*FIELDS[:8], "password", *FIELDS[8:]]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["port"].required = False
        self.fields[
            "port"
        ].help_text = "Empty: the usual port (IMAP 993/143, POP3 995/110, SMTP 465/587)."

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        protocol = data.get("protocol")
        if protocol and data.get("security") and not data.get("port"):
            data["port"] = DEFAULT_PORTS[(protocol, data["security"])]
        return data

    def _post_clean(self) -> None:
        super()._post_clean()  # type: ignore[misc]
        if self.errors:
            return
        # The rules the API and the command line meet too, on the instance as it would be saved.
        errors = mailbox_check(mailbox=self.instance, password=self.cleaned_data.get("password"))
        for field, message in errors.items():
            self.add_error(field if field in self.fields else None, message)
