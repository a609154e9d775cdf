from typing import Any

from django import forms

from mailgrant.mailboxes.models import Mailbox
from mailgrant.mailboxes.services.mailboxes import (
    MAILBOX_FIELDS,
    mailbox_check,
    mailbox_defaults,
)

# field -> the choices it applies to, as "select=value|value" terms all of which must hold
# (direction is the effective one: empty means from the protocol, SMTP sending).
APPLIES = {
    "password": "auth_method=password",
    "oauth_client": "auth_method=oauth2",
    "grant": "auth_method=oauth2",
    "sasl_mechanism": "auth_method=oauth2",
    "smtp_username": "direction=outgoing protocol=smtp",
    "folder": "direction=incoming",
    "post_fetch_action": "direction=incoming",
    "poll_interval": "direction=incoming",
    "push": "direction=incoming protocol=imap",
}


class MailboxForm(forms.ModelForm):
    # Write-only, like the client secret: never rendered back.
    password = forms.CharField(
        required=False,
        strip=False,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text="Only for the password method. Stored encrypted; leave empty to keep it. "
        "A change of host, port or security needs it typed again; an OAuth mailbox whose "
        "server changes must be authorized again.",
    )

    class Meta:
        model = Mailbox
        fields = [
            *MAILBOX_FIELDS[:8],
            "password",
            *MAILBOX_FIELDS[8:],
            *(["push"] if "push" not in MAILBOX_FIELDS else []),
        ]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["port"].required = False
        self.fields[
            "port"
        ].help_text = "Empty: the usual port (IMAP 993/143, POP3 995/110, SMTP 465/587)."
        direction = self.fields["direction"]
        direction.required = False
        direction.choices = [("", "From the protocol"), *Mailbox.Direction.choices]  # type: ignore[attr-defined]
        if not self.instance.pk:
            self.initial.setdefault("direction", "")
        if "push" in self.fields:  # left out (a form of before push, a hidden row): polling
            self.fields["push"].required = False
        # Which fields apply to which choice, for mailgrant/mailbox.js to show only those; the
        # server checks the same rules whatever is shown (mailbox_check).
        for name, applies in APPLIES.items():
            if name in self.fields:
                widget = self.fields[name].widget
                # The admin wraps a foreign key's select (its + and pencil): mark the select.
                inner: forms.Widget = getattr(widget, "widget", None) or widget
                inner.attrs["data-applies"] = applies

    def clean(self) -> dict[str, Any]:
        """The defaults the service fills (direction, port), filled the same way here so the
        form shows what will be saved."""
        data = super().clean() or {}
        probe = Mailbox(
            protocol=data.get("protocol") or "",
            security=data.get("security") or "",
            direction=data.get("direction") or "",
            port=data.get("port") or None,  # type: ignore[misc]
        )
        mailbox_defaults(mailbox=probe)
        data["direction"], data["port"] = probe.direction, probe.port
        if "push" in self.fields and not data.get("push"):
            data["push"] = Mailbox.Push.POLL
        return data

    def _post_clean(self) -> None:
        super()._post_clean()  # type: ignore[misc]
        if self.errors:
            return
        # The rules the API and the command line meet too, on the instance as it would be saved.
        errors = mailbox_check(mailbox=self.instance, password=self.cleaned_data.get("password"))
        for field, message in errors.items():
            self.add_error(field if field in self.fields else None, message)
