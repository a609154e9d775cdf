"""Mailboxes: created and updated from plain values (every rule here, whichever entry point
asks), deleted, and their own account authorized."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.db import transaction
from django.utils import timezone

from mailgrant.common.audit import SYSTEM, Actor, AuditAction, audit_record
from mailgrant.common.errors import Conflict, Invalid, NeedsAdmin
from mailgrant.common.validation import model_errors
from mailgrant.common.wakeup import wakeup_notify
from mailgrant.mailboxes.models import Mailbox
from mailgrant.mailboxes.services.outcome import mailbox_health_disabled
from mailgrant.oauth.models import Grant, OAuthClient
from mailgrant.oauth.selectors import grant_default_for
from mailgrant.oauth.services.authorization import StartedAuthorization, authorization_start
from mailgrant.oauth.services.grants import grant_create, grant_tokens_drop

# What the workers are woken about when a mailbox becomes due (common.wakeup).
MAILBOXES_TOPIC = "mailboxes"

# The usual port of each protocol and security, used when none is given.
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
# What a mailbox is made of, as the API, the command line and the admin give it.
MAILBOX_FIELDS = (
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
    "push",
)


def mailbox_defaults(*, mailbox: Mailbox) -> None:
    """Fill what was left empty: the direction from the protocol (SMTP sends, the others
    fetch), the port from the protocol and security."""
    if not mailbox.direction and mailbox.protocol:
        smtp = mailbox.protocol == Mailbox.Protocol.SMTP
        mailbox.direction = Mailbox.Direction.OUTGOING if smtp else Mailbox.Direction.INCOMING
    if not mailbox.port and (mailbox.protocol, mailbox.security) in DEFAULT_PORTS:
        mailbox.port = DEFAULT_PORTS[(mailbox.protocol, mailbox.security)]


def mailbox_check(*, mailbox: Mailbox, password: str | None = None) -> dict[str, str]:
    """Field errors of `mailbox` as it stands (with `password` about to be set), beyond what
    each field checks on its own."""
    errors: dict[str, str] = {}
    if mailbox.protocol and mailbox.direction:
        expected = "outgoing" if mailbox.protocol == Mailbox.Protocol.SMTP else "incoming"
        if mailbox.direction != expected:
            errors["direction"] = f"{mailbox.protocol.upper()} is for {expected} mailboxes."
    client, grant = mailbox.oauth_client, mailbox.grant
    if mailbox.auth_method == Mailbox.AuthMethod.OAUTH2 and client is None:
        errors["oauth_client"] = "Choose the OAuth client (or use a password)."
    if grant is not None and client is not None and grant.client_id != client.pk:
        errors["grant"] = "This grant belongs to another OAuth client."
    if mailbox.auth_method == Mailbox.AuthMethod.PASSWORD and not (password or mailbox.password):
        errors["password"] = "Enter the password for the password method."
    if mailbox.push == Mailbox.Push.IDLE and mailbox.protocol != Mailbox.Protocol.IMAP:
        errors["push"] = "IDLE is IMAP's: a POP3 or SMTP mailbox polls (push: poll)."
    action = mailbox.post_fetch_action or "keep"
    if mailbox.protocol == Mailbox.Protocol.POP3 and action not in ("keep", "delete"):
        errors["post_fetch_action"] = "POP3 can only keep or delete messages."
    if (
        mailbox.auth_method == Mailbox.AuthMethod.PASSWORD
        and not password
        and _server_moved(mailbox)
    ):
        errors.setdefault("password", MOVED_PASSWORD)
    return errors


def _server_moved(mailbox: Mailbox) -> bool:
    """Whether `mailbox` now points at another server than the one saved."""
    stored = Mailbox.objects.filter(pk=mailbox.pk).first() if mailbox.pk else None
    return stored is not None and _server_of(stored) != _server_of(mailbox)


def mailbox_errors(*, mailbox: Mailbox, password: str | None = None) -> dict[str, str]:
    """Every field error of `mailbox` once its defaults are filled: the model's own rules
    (lengths, choices, a taken name) and how the fields go together."""
    mailbox_defaults(mailbox=mailbox)
    errors = model_errors(mailbox, exclude=["password"])
    for field, problem in mailbox_check(mailbox=mailbox, password=password).items():
        errors.setdefault(field, problem)
    return errors


def mailbox_create(
    *, values: Mapping[str, Any], password: str | None = None, actor: Actor = SYSTEM
) -> Mailbox:
    """A new mailbox from `values` (MAILBOX_FIELDS; the OAuth client and grant by id, or the
    client by name); what is not given takes its default."""
    mailbox = Mailbox(direction="", port=None)  # type: ignore[misc]  # filled by the defaults
    _apply(mailbox=mailbox, values=values)
    return mailbox_save(mailbox=mailbox, password=password, actor=actor)


def mailbox_update(
    *,
    mailbox: Mailbox,
    values: Mapping[str, Any],
    password: str | None = None,
    actor: Actor = SYSTEM,
) -> Mailbox:
    """Change the fields given in `values`; the others stay."""
    _apply(mailbox=mailbox, values=values)
    return mailbox_save(mailbox=mailbox, password=password, actor=actor)


def _apply(*, mailbox: Mailbox, values: Mapping[str, Any]) -> None:
    unknown = sorted(set(values) - set(MAILBOX_FIELDS))
    if unknown:
        raise Invalid(dict.fromkeys(unknown, "not a field of a mailbox"))
    for field, value in values.items():
        if field == "oauth_client":
            mailbox.oauth_client = _referenced(OAuthClient, field, value)
        elif field == "grant":
            mailbox.grant = _referenced(Grant, field, value)
        else:
            setattr(mailbox, field, value)


def _referenced(model: type[OAuthClient] | type[Grant], field: str, value: Any) -> Any:
    """The object `value` names (an id, or a client's name); None for none; a dangling
    reference is bad input naming the field."""
    if value in (None, ""):
        return None
    found: OAuthClient | Grant | None
    by_name = isinstance(value, str) and not value.isdigit()
    if by_name and model is OAuthClient:
        found = OAuthClient.objects.filter(name=value).first()
        what = f"named {value!r}"
    else:
        try:
            key = int(value)
        except (TypeError, ValueError):
            raise Invalid(
                {field: f"expected a {model._meta.verbose_name} id, not {value!r}"}
            ) from None
        found = model.objects.filter(pk=key).first()
        what = str(key)
    if found is None:
        raise Invalid({field: f"No {model._meta.verbose_name} {what}."})
    return found


MOVED_PASSWORD = (
    "The host, port or security changed: enter the password again with this change (the "
    "stored one is never sent to another server)."
)
MOVED_GRANT = (
    "The host, port or security changed: this mailbox's OAuth token is not sent there until "
    "its account authorizes it again (Authorize)."
)


def mailbox_save(
    *, mailbox: Mailbox, password: str | None = None, actor: Actor = SYSTEM
) -> Mailbox:
    """Create or update `mailbox` as it stands; a non-empty `password` replaces the stored
    one. Its defaults are filled and every rule checked first.

    Its secrets never follow a change of server (host, port or security) by themselves: a
    stored password needs giving again with the change (else the change is refused, losing
    nothing); an OAuth mailbox goes on with a grant of its own that its account authorizes
    again, so another mailbox sharing the old grant keeps working. ``mailbox.save_notice``
    then says so."""
    taken = Mailbox.objects.filter(name=mailbox.name).exclude(pk=mailbox.pk)
    if mailbox.name and taken.exists():
        raise Conflict(f"A mailbox named {mailbox.name!r} exists already.")
    errors = mailbox_errors(mailbox=mailbox, password=password)
    if errors:
        raise Invalid(errors)
    moved = _server_moved(mailbox)
    cleared = moved and bool(mailbox.password) and not password
    if cleared:
        mailbox.password = None  # a leftover of the password method: not sent elsewhere
    if password:
        mailbox.password = password  # type: ignore[assignment]  # sealed on save
    creating = mailbox.pk is None
    mailbox.save_notice = ""
    with transaction.atomic():
        if moved and mailbox.auth_method == Mailbox.AuthMethod.OAUTH2:
            mailbox.save_notice = _grant_detach(mailbox=mailbox, actor=actor)
        _health_on_save(mailbox=mailbox, password_given=bool(password))
        mailbox.save()
        audit_record(
            actor=actor,
            target=mailbox,
            action=AuditAction.MAILBOX_CREATED if creating else AuditAction.MAILBOX_UPDATED,
            message="; ".join(
                note
                for note in (
                    "server changed: stored password cleared" if cleared else "",
                    mailbox.save_notice,
                )
                if note
            ),
        )
        if mailbox.enabled and mailbox.direction == Mailbox.Direction.INCOMING:
            wakeup_notify(MAILBOXES_TOPIC)  # a new or enabled mailbox is fetched at once
    return mailbox


def mailbox_fetch_soon(*, mailbox: Mailbox, actor: Actor = SYSTEM) -> None:
    """Ask the workers to fetch `mailbox` now rather than on its interval ("Fetch now"
    without waiting for the fetch): it becomes due at once and the workers are woken."""
    if mailbox.direction != Mailbox.Direction.INCOMING:
        raise NeedsAdmin("Only incoming mailboxes fetch.", code="config")
    if not mailbox.enabled:
        raise NeedsAdmin("The mailbox is disabled: enable it first.", code="disabled")
    with transaction.atomic():
        mailbox.next_poll_at = timezone.now()
        Mailbox.objects.filter(pk=mailbox.pk).update(next_poll_at=mailbox.next_poll_at)
        audit_record(actor=actor, target=mailbox, action=AuditAction.MAILBOX_FETCH_REQUESTED)
        wakeup_notify(MAILBOXES_TOPIC)


# What a login depends on: a change of one is a fresh start for the mailbox's health.
LOGIN_FIELDS = (
    "protocol",
    "host",
    "port",
    "security",
    "username",
    "auth_method",
    "oauth_client_id",
    "grant_id",
    "sasl_mechanism",
    "smtp_username",
    "folder",
    "push",
)


def _health_on_save(*, mailbox: Mailbox, password_given: bool) -> None:
    """Disabled is a health of its own; enabled again, or its settings changed, a mailbox
    starts afresh: ok until its next attempt says otherwise, and (incoming) due at once
    rather than after a backoff its old settings earned."""
    now = timezone.now()
    if not mailbox.enabled:
        mailbox_health_disabled(mailbox=mailbox, now=now)
        return
    restarted = mailbox.health_restart_on_change(
        fields=LOGIN_FIELDS, forced=password_given, now=now
    )
    if restarted and mailbox.direction == Mailbox.Direction.INCOMING:
        mailbox.next_poll_at = None


def _server_of(mailbox: Mailbox) -> tuple[str, int | None, str]:
    return ((mailbox.host or "").strip().lower().rstrip("."), mailbox.port, mailbox.security)


def _grant_detach(*, mailbox: Mailbox, actor: Actor) -> str:
    """The grant whose token would go to the new server stops going there: the mailbox's own
    grant loses its tokens; a grant it shares (the client's default, or another mailbox's)
    stays, and the mailbox gets a new grant to authorize."""
    client = mailbox.oauth_client
    if client is None:
        return ""
    grant = mailbox.grant or grant_default_for(client=client)
    if grant is None or not (grant.token_set or grant.original_token_set):
        return ""
    shared = (
        grant.is_default
        or Mailbox.objects.filter(grant=grant).exclude(pk=mailbox.pk).exists()
        or mailbox.grant is None
    )
    if shared:
        mailbox.grant = grant_create(client=client, account=mailbox.login_username, actor=actor)
    else:
        grant_tokens_drop(grants=[grant], reason=MOVED_GRANT)
    return MOVED_GRANT


def mailbox_delete(*, mailbox: Mailbox, actor: Actor = SYSTEM) -> None:
    """Delete `mailbox` and its message index; the message files stay in the store."""
    with transaction.atomic():
        audit_record(actor=actor, target=mailbox, action=AuditAction.MAILBOX_DELETED)
        mailbox.delete()


def mailbox_authorize_start(
    *, mailbox: Mailbox, actor: Actor = SYSTEM, return_url: str = "", purpose: str = "validate"
) -> StartedAuthorization:
    """Validate this mailbox's own account: a grant of its OAuth client, created when the
    mailbox has none yet, with the mailbox address as login hint. `purpose` as for
    authorization_start ("api" or "cli" for a start outside a browser session). A refused
    start leaves nothing behind."""
    client = mailbox.oauth_client
    if client is None:
        raise NeedsAdmin("Choose the OAuth client this mailbox logs in with.", code="config")
    with transaction.atomic():
        grant = mailbox.grant
        if grant is None:
            grant = grant_create(client=client, account=mailbox.login_username, actor=actor)
            Mailbox.objects.filter(pk=mailbox.pk).update(grant=grant)
        started = authorization_start(
            client=client,
            purpose=purpose,
            actor=actor,
            grant=grant,
            login_hint=mailbox.login_username,
            return_url=return_url,
        )
    mailbox.grant = grant
    return started
