from typing import Any

from django import forms

from mailgrant.mailboxes.models import Mailbox

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
        protocol, direction = data.get("protocol"), data.get("direction")
        if protocol and direction:
            expected = "outgoing" if protocol == "smtp" else "incoming"
            if direction != expected:
                self.add_error("direction", f"{protocol.upper()} is for {expected} mailboxes.")
        if protocol and data.get("security") and not data.get("port"):
            data["port"] = DEFAULT_PORTS[(protocol, data["security"])]
        method = data.get("auth_method")
        client, grant = data.get("oauth_client"), data.get("grant")
        if method == Mailbox.AuthMethod.OAUTH2 and not client:
            self.add_error("oauth_client", "Choose the OAuth client (or use a password).")
        if grant and client and grant.client_id != client.pk:
            self.add_error("grant", "This grant belongs to another OAuth client.")
        has_password = bool(self.instance.pk and self.instance.password)
        if method == Mailbox.AuthMethod.PASSWORD and not (data.get("password") or has_password):
            self.add_error("password", "Enter the password for the password method.")
        action = data.get("post_fetch_action") or "keep"
        if protocol == "pop3" and action not in ("keep", "delete"):
            self.add_error("post_fetch_action", "POP3 can only keep or delete messages.")
        return data
