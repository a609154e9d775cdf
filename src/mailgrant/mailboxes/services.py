"""Writes for mailboxes: save, test the connection, fetch into the store, send.

Protocol work is in imap / pop3 / smtp (no Django); a transport gets a `get_token()` callable,
never the token store. A refused token is refreshed once and the login retried once."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta
from email.errors import HeaderParseError
from email.message import EmailMessage
from email.utils import make_msgid, parseaddr
from pathlib import Path
from typing import Any, TypeVar

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from mailgrant.common.audit import actor_for, audit_record
from mailgrant.common.fields import reveal
from mailgrant.mailboxes import sasl
from mailgrant.mailboxes.imap import ImapClient, ServerMessage
from mailgrant.mailboxes.models import Mailbox, Message
from mailgrant.mailboxes.pop3 import Pop3Client
from mailgrant.mailboxes.smtp import SendResult, SmtpClient
from mailgrant.mailboxes.store import envelope, message_path, sync, write_message
from mailgrant.mailboxes.transport import (
    AuthRefused,
    Endpoint,
    Login,
    MailError,
    PasswordLogin,
    TokenLogin,
    Transcript,
)
from mailgrant.oauth.models import Grant
from mailgrant.oauth.selectors import grant_default_for
from mailgrant.oauth.services import (
    GrantUnusable,
    StartedAuthorization,
    access_token_for,
    authorization_start,
    grant_refresh,
)

log = logging.getLogger(__name__)
T = TypeVar("T")

BATCH_BYTES = 16 * 1024 * 1024
MAX_MESSAGE_BYTES = 100 * 1024 * 1024


class MailboxError(Exception):
    """A mailbox operation failed; `message` is for the administrator, `kind` is stable."""

    def __init__(
        self,
        message: str,
        *,
        kind: str = "error",
        transcript: str = "",
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.kind = kind
        self.transcript = transcript
        self.details = details


@dataclass
class TestResult:
    ok: bool
    message: str
    capabilities: tuple[str, ...] = ()
    mechanisms: tuple[str, ...] = ()
    transcript: str = ""
    details: dict[str, Any] | None = None
    refreshed: bool = False


@dataclass
class FetchResult:
    fetched: int = 0
    bytes: int = 0
    already_stored: int = 0
    resynced: int = 0
    actions: int = 0
    errors: list[str] = field(default_factory=list)


def store_root() -> Path:
    root = Path(settings.MAILGRANT_MESSAGE_STORE)
    root.mkdir(parents=True, exist_ok=True)
    return root


# --- saving -----------------------------------------------------------------------------------


class MailboxInvalid(MailboxError):
    """Fields that do not go together; `errors` maps each field to what is wrong with it."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()), kind="invalid")
        self.errors = errors


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
    action = mailbox.post_fetch_action or "keep"
    if mailbox.protocol == Mailbox.Protocol.POP3 and action not in ("keep", "delete"):
        errors["post_fetch_action"] = "POP3 can only keep or delete messages."
    return errors


def mailbox_save(*, mailbox: Mailbox, password: str | None = None, user: Any = None) -> Mailbox:
    """Create or update `mailbox`; a non-empty `password` replaces the stored one."""
    errors = mailbox_check(mailbox=mailbox, password=password)
    if errors:
        raise MailboxInvalid(errors)
    if password:
        mailbox.password = password  # type: ignore[assignment]  # sealed on save
    creating = mailbox.pk is None
    with transaction.atomic():
        mailbox.save()
        audit_record(
            actor=actor_for(user),
            user=user,
            target=mailbox,
            action="mailbox.created" if creating else "mailbox.updated",
        )
    return mailbox


def mailbox_delete(*, mailbox: Mailbox, user: Any = None) -> None:
    """Delete `mailbox` and its message index; the message files stay in the store."""
    with transaction.atomic():
        audit_record(actor=actor_for(user), user=user, target=mailbox, action="mailbox.deleted")
        mailbox.delete()


def mailbox_authorize_start(
    *, mailbox: Mailbox, user: Any = None, return_url: str = "", purpose: str = "validate"
) -> StartedAuthorization:
    """Validate this mailbox's own account: a grant of its OAuth client, created when the
    mailbox has none yet, with the mailbox address as login hint. `purpose` as for
    authorization_start ("api" or "cli" for a start outside a browser session)."""
    client = mailbox.oauth_client
    if client is None:
        raise MailboxError("Choose the OAuth client this mailbox logs in with.", kind="config")
    with transaction.atomic():
        grant = mailbox.grant
        if grant is None:
            grant = Grant.objects.create(client=client, account=mailbox.login_username)
            Mailbox.objects.filter(pk=mailbox.pk).update(grant=grant)
            mailbox.grant = grant
    return authorization_start(
        client=client,
        purpose=purpose,
        user=user,
        grant=grant,
        login_hint=mailbox.login_username,
        return_url=return_url,
    )


def mailbox_grant(*, mailbox: Mailbox) -> Grant | None:
    if mailbox.grant_id:
        return mailbox.grant
    return grant_default_for(client=mailbox.oauth_client) if mailbox.oauth_client else None


# --- logging in --------------------------------------------------------------------------------


def _endpoint(mailbox: Mailbox) -> Endpoint:
    return Endpoint(
        host=mailbox.host,
        port=mailbox.port,
        security=mailbox.security,
        timeout=float(getattr(settings, "MAILGRANT_MAIL_TIMEOUT", 30)),
    )


def _login(mailbox: Mailbox) -> tuple[Login, Grant | None]:
    if mailbox.auth_method == Mailbox.AuthMethod.PASSWORD:
        if not mailbox.password:
            raise MailboxError("This mailbox has no password stored.", kind="config")
        return PasswordLogin(mailbox.login_username, reveal(mailbox.password)), None
    client = mailbox.oauth_client
    if client is None:
        raise MailboxError("Choose the OAuth client this mailbox logs in with.", kind="config")
    if not client.is_enabled:
        raise MailboxError(
            f"OAuth client {client.name} is disabled: nothing was fetched or sent.",
            kind="client_disabled",
        )
    grant = mailbox_grant(mailbox=mailbox)
    if grant is None:
        raise MailboxError(
            f"OAuth client {client.name} is not authorized yet: press Authorize.",
            kind="not_authorized",
        )
    mechanism = sasl.MECHANISMS[mailbox.sasl_mechanism]
    return TokenLogin(
        mailbox.login_username,
        mechanism,
        lambda: access_token_for(grant=grant, min_valid_seconds=60).access_token,
    ), grant


def _with_login(
    mailbox: Mailbox, work: Callable[[Login], T], on_refresh: Callable[[], None] | None = None
) -> T:
    """Run `work` with the mailbox's login; a refused token is refreshed once and retried once."""
    login, grant = _login(mailbox)
    try:
        return work(login)
    except AuthRefused as exc:
        if grant is None or exc.transient:
            raise
        log.info(
            "Mailbox %s: token refused (%s); refreshing once and retrying", mailbox.pk, exc.message
        )
        grant_refresh(grant=grant, force=True)
        if on_refresh:
            on_refresh()
        return work(login)


def _mail_error(exc: Exception, transcript: Transcript | None = None) -> MailboxError:
    if isinstance(exc, MailboxError):
        return exc
    text = str(transcript) if transcript else ""
    if isinstance(exc, AuthRefused):
        return MailboxError(exc.message, kind="auth", transcript=text, details=exc.details)
    if isinstance(exc, MailError):
        return MailboxError(exc.message, kind=exc.kind, transcript=text)
    if isinstance(exc, GrantUnusable):
        return MailboxError(exc.message, kind=exc.code, transcript=text)
    raise exc


# --- test connection ---------------------------------------------------------------------------


def mailbox_test(*, mailbox: Mailbox, user: Any = None) -> TestResult:
    """Connect, log in and (incoming) open the folder; report the masked transcript."""
    transcript = Transcript()
    refreshed = False

    def mark_refreshed() -> None:
        nonlocal refreshed
        refreshed = True
        transcript.note("token refused: refreshed it once, retrying")

    def attempt(login: Login) -> TestResult:
        endpoint = _endpoint(mailbox)
        if mailbox.protocol == Mailbox.Protocol.IMAP:
            with ImapClient(endpoint, login, transcript=transcript) as imap:
                state = imap.select(mailbox.folder or "INBOX")
                caps = imap.capabilities
                summary = f"{state.exists} message(s) in {state.name}"
        elif mailbox.protocol == Mailbox.Protocol.POP3:
            with Pop3Client(endpoint, login, transcript=transcript) as pop:
                caps = pop.capabilities
                summary = f"{len(pop.messages())} message(s) waiting"
        else:
            with SmtpClient(endpoint, login, transcript=transcript) as smtp:
                caps = smtp.capabilities
                summary = "ready to send"
        mechanisms = tuple(sorted({m for c in caps for m in _auth_mechanisms(c)}))
        return TestResult(
            ok=True,
            message=f"Connected and logged in as {login.username}: {summary}.",
            capabilities=caps,
            mechanisms=mechanisms,
            transcript=str(transcript),
        )

    try:
        result = _with_login(mailbox, attempt, on_refresh=mark_refreshed)
        result.refreshed = refreshed
        result.transcript = str(transcript)
    except (MailError, GrantUnusable, MailboxError) as exc:
        error = _mail_error(exc, transcript)
        result = TestResult(
            ok=False,
            message=error.message,
            transcript=str(transcript),
            details=error.details,
            refreshed=refreshed,
        )
    with transaction.atomic():
        audit_record(
            actor=actor_for(user),
            user=user,
            target=mailbox,
            action="mailbox.tested",
            outcome="ok" if result.ok else "failed",
            message=result.message,
        )
    return result


def _auth_mechanisms(capability: str) -> list[str]:
    upper = capability.upper()
    if upper.startswith("AUTH="):
        return [upper[5:]]
    if upper.startswith(("AUTH ", "SASL ")):
        return upper.split()[1:]
    return []


# --- fetch -------------------------------------------------------------------------------------


def mailbox_fetch(
    *, mailbox: Mailbox, user: Any = None, progress: Callable[[int, int], None] | None = None
) -> FetchResult:
    """Fetch new messages into the store; a message's post-fetch action runs on the server only
    after it is stored and committed here. Records the outcome on the mailbox."""
    now = timezone.now()
    if mailbox.direction != Mailbox.Direction.INCOMING:
        raise MailboxError("Only incoming mailboxes fetch.", kind="config")
    try:
        if mailbox.protocol == Mailbox.Protocol.IMAP:
            result = _with_login(mailbox, lambda login: _fetch_imap(mailbox, login, progress))
        else:
            result = _with_login(mailbox, lambda login: _fetch_pop3(mailbox, login, progress))
    except (MailError, GrantUnusable, MailboxError) as exc:
        error = _mail_error(exc)
        _record_outcome(mailbox, now, error=error.message, user=user)
        raise error from None
    _record_outcome(mailbox, now, error="", user=user, result=result)
    return result


def _record_outcome(
    mailbox: Mailbox, started: Any, *, error: str, user: Any, result: FetchResult | None = None
) -> None:
    fields = {
        "last_fetch_at": started,
        "last_error": error,
        "next_poll_at": started + timedelta(seconds=max(mailbox.poll_interval, 10)),
    }
    if not error:
        fields["last_success_at"] = timezone.now()
    with transaction.atomic():
        Mailbox.objects.filter(pk=mailbox.pk).update(**fields)
        for key, value in fields.items():
            setattr(mailbox, key, value)
        if error or user is not None or (result and result.fetched):
            audit_record(
                actor=actor_for(user),
                user=user,
                target=mailbox,
                action="mailbox.fetched",
                outcome="failed" if error else "ok",
                message=error or f"{result.fetched if result else 0} new message(s)",
            )


def _batch_messages() -> int:
    return max(1, int(settings.MAILGRANT_FETCH_BATCH))


def _batches(messages: Sequence[ServerMessage]) -> Iterator[list[ServerMessage]]:
    batch: list[ServerMessage] = []
    size = 0
    for message in messages:
        if batch and (len(batch) >= _batch_messages() or size + message.size > BATCH_BYTES):
            yield batch
            batch, size = [], 0
        batch.append(message)
        size += message.size
    if batch:
        yield batch


def _fetch_imap(
    mailbox: Mailbox, login: Login, progress: Callable[[int, int], None] | None
) -> FetchResult:
    result = FetchResult()
    folder = mailbox.folder or "INBOX"
    with ImapClient(_endpoint(mailbox), login) as imap:
        state = imap.select(folder)
        on_server = imap.messages()
        stored = Message.objects.filter(mailbox=mailbox, folder=folder)
        # uid -> post_action_done: two columns, not whole rows (mailboxes can be large).
        current = dict(
            stored.filter(uidvalidity=state.uidvalidity).values_list("uid", "post_action_done")
        )
        if stored.exclude(uidvalidity=state.uidvalidity).exists():
            result.resynced = _resync_uidvalidity(
                mailbox, folder, imap, state.uidvalidity, on_server, current
            )
            current = dict(
                stored.filter(uidvalidity=state.uidvalidity).values_list("uid", "post_action_done")
            )
        # Stored before but the action did not run (the last fetch was interrupted).
        pending = [int(uid) for uid, done in current.items() if not done]
        on_server_uids = {m.uid for m in on_server}
        gone = [uid for uid in pending if uid not in on_server_uids]
        if gone:  # moved or deleted after all (killed before we noted it): nothing left to do
            stored.filter(uidvalidity=state.uidvalidity, uid__in=[str(u) for u in gone]).update(
                post_action_done=True
            )
        new = [m for m in on_server if str(m.uid) not in current]
        result.already_stored = len(on_server) - len(new)
        too_big = [m for m in new if m.size > MAX_MESSAGE_BYTES]
        for m in too_big:
            result.errors.append(
                f"UID {m.uid} is {m.size} bytes, over the "
                f"{MAX_MESSAGE_BYTES} limit: left on the server"
            )
        new = [m for m in new if m.size <= MAX_MESSAGE_BYTES]
        _imap_action(
            mailbox,
            imap,
            [u for u in pending if u in on_server_uids],
            folder,
            state.uidvalidity,
            result,
        )
        # Each batch's rows (the header scan), files and sync are made in a writer thread,
        # while this thread fetches the next batch (mostly waiting on the socket, GIL free).
        # Per batch the order never changes: files, sync, rows committed, post-fetch action.
        destination = _destination(mailbox, folder, state.uidvalidity)
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="store") as writer:
            in_flight: Future[list[_Row]] | None = None
            for batch in _batches(new):
                fetched = [(str(uid), raw) for uid, raw in imap.fetch([m.uid for m in batch])]
                result.fetched += len(fetched)
                result.bytes += sum(len(raw) for _, raw in fetched)
                job = writer.submit(_store_batch, destination, fetched, _now_for_database())
                if in_flight:
                    _commit_batch(mailbox, imap, in_flight, destination, result)
                in_flight = job
                if progress:
                    progress(result.fetched, result.bytes)
            if in_flight:
                _commit_batch(mailbox, imap, in_flight, destination, result)
    return result


def _store_batch(
    destination: _Destination, fetched: list[tuple[str, bytes]], fetched_at: Any
) -> list[_Row]:
    """A batch's rows, and its files created, then made durable (one writer job a batch)."""
    rows = [_stored_row(destination, uid, raw, fetched_at) for uid, raw in fetched]
    for row, (_, raw) in zip(rows, fetched, strict=True):
        write_message(destination.root, row.path, raw)
    sync(destination.root, [row.path for row in rows])
    return rows


def _commit_batch(
    mailbox: Mailbox,
    imap: ImapClient,
    stored: Future[list[_Row]],
    destination: _Destination,
    result: FetchResult,
) -> None:
    """Once the batch's files are written and synced: commit its rows, then (only then) run
    the post-fetch action on the server."""
    rows = stored.result()  # re-raises a failed write or sync: nothing is committed then
    _insert_messages(rows)
    uids = [int(r.uid) for r in rows]
    _imap_action(mailbox, imap, uids, destination.folder, destination.uidvalidity, result)


@dataclass(frozen=True)
class _Row:
    uid: str
    path: str
    values: tuple[Any, ...]


_INSERT_COLUMNS = (
    "mailbox_id",
    "folder",
    "uidvalidity",
    "uid",
    "message_id",
    "sender",
    "recipients",
    "subject",
    "date",
    "size",
    "path",
    "fetched_at",
    "post_action_done",
)


@dataclass(frozen=True)
class _Destination:
    """Where a folder's messages are stored, and what their rows share."""

    root: Path
    mailbox_id: int
    folder: str
    uidvalidity: int
    keep: bool
    adapt_datetime: Callable[[Any], Any]  # the database's, looked up in the fetching thread


def _destination(mailbox: Mailbox, folder: str, uidvalidity: int) -> _Destination:
    return _Destination(
        root=store_root(),
        mailbox_id=mailbox.pk,
        folder=folder,
        uidvalidity=uidvalidity,
        keep=mailbox.post_fetch_action == "keep",
        adapt_datetime=connection.ops.adapt_datetimefield_value,
    )


def _stored_row(destination: _Destination, uid: str, raw: bytes, fetched_at: Any) -> _Row:
    """The index row of a message (its file is written separately, to `path`); `fetched_at`
    is the batch's, adapted for the database once. Touches no database connection."""
    d = destination
    relative = message_path(
        mailbox_id=d.mailbox_id, folder=d.folder, uidvalidity=d.uidvalidity, uid=uid
    )
    info = envelope(raw)
    values = (
        d.mailbox_id,
        d.folder,
        d.uidvalidity,
        uid,
        info.message_id,
        info.sender,
        info.recipients,
        info.subject,
        d.adapt_datetime(info.date),
        len(raw),
        relative,
        fetched_at,
        d.keep,
    )
    return _Row(uid=uid, path=relative, values=values)


def _now_for_database() -> Any:
    return connection.ops.adapt_datetimefield_value(timezone.now())


def _insert_messages(rows: Sequence[_Row]) -> None:
    """One executemany. Django's bulk_create spent more preparing values than the database
    spent storing them (bench/fetch.py). A row a killed run already committed is skipped."""
    if not rows:
        return
    quote = connection.ops.quote_name
    table = quote(Message._meta.db_table)
    columns = ", ".join(quote(c) for c in _INSERT_COLUMNS)
    marks = ", ".join(["%s"] * len(_INSERT_COLUMNS))
    if connection.vendor == "sqlite":
        sql = f"INSERT OR IGNORE INTO {table} ({columns}) VALUES ({marks})"  # noqa: S608
    else:
        sql = f"INSERT INTO {table} ({columns}) VALUES ({marks}) ON CONFLICT DO NOTHING"  # noqa: S608
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.executemany(sql, [r.values for r in rows])


def _imap_action(
    mailbox: Mailbox,
    imap: ImapClient,
    uids: list[int],
    folder: str,
    uidvalidity: int,
    result: FetchResult,
) -> None:
    action = mailbox.post_fetch_action
    if not uids or action == "keep":
        return
    if action == "mark_seen":
        imap.mark_seen(uids)
    elif action == "delete":
        imap.delete(uids)
    elif action.startswith("move:"):
        imap.move(uids, action[5:].strip())
    Message.objects.filter(
        mailbox=mailbox, folder=folder, uidvalidity=uidvalidity, uid__in=[str(u) for u in uids]
    ).update(post_action_done=True)
    result.actions += len(uids)


def _resync_uidvalidity(
    mailbox: Mailbox,
    folder: str,
    imap: ImapClient,
    uidvalidity: int,
    on_server: list[ServerMessage],
    current: dict[str, bool],
) -> int:
    """The server renumbered the folder: match stored messages by Message-ID and size, so
    nothing is fetched twice and nothing is lost."""
    old = Message.objects.filter(mailbox=mailbox, folder=folder).exclude(uidvalidity=uidvalidity)
    by_key: dict[tuple[str, int], list[Message]] = {}
    for row in old:
        if row.message_id:
            by_key.setdefault((row.message_id, row.size), []).append(row)
    unknown = [m for m in on_server if str(m.uid) not in current]
    ids = imap.message_ids([m.uid for m in unknown])
    matched = 0
    with transaction.atomic():
        for m in unknown:
            rows = by_key.get((ids.get(m.uid, ""), m.size))
            if rows:
                row = rows.pop(0)
                Message.objects.filter(pk=row.pk).update(uidvalidity=uidvalidity, uid=str(m.uid))
                matched += 1
    log.warning(
        "Mailbox %s: UIDVALIDITY of %s changed; %d stored message(s) matched again",
        mailbox.pk,
        folder,
        matched,
    )
    return matched


def _fetch_pop3(
    mailbox: Mailbox, login: Login, progress: Callable[[int, int], None] | None
) -> FetchResult:
    result = FetchResult()
    folder = "INBOX"
    destination = _destination(mailbox, folder, 0)
    delete = mailbox.post_fetch_action == "delete"
    with Pop3Client(_endpoint(mailbox), login) as pop:
        on_server = pop.messages()
        current = set(
            Message.objects.filter(mailbox=mailbox, folder=folder).values_list("uid", flat=True)
        )
        new = [m for m in on_server if m.uidl not in current]
        result.already_stored = len(on_server) - len(new)
        to_delete = [m.number for m in on_server if m.uidl in current] if delete else []
        rows: list[_Row] = []

        def commit() -> None:
            sync(destination.root, [r.path for r in rows])
            _insert_messages(rows)
            to_delete.extend(numbers[r.uid] for r in rows)
            rows.clear()
            if progress:
                progress(result.fetched, result.bytes)

        numbers = {m.uidl: m.number for m in on_server}
        batch_bytes = 0
        for m in new:
            if m.size > MAX_MESSAGE_BYTES:
                result.errors.append(f"message {m.uidl} is {m.size} bytes: left on the server")
                continue
            raw = pop.retrieve(m.number)
            row = _stored_row(destination, m.uidl, raw, _now_for_database())
            write_message(destination.root, row.path, raw)
            rows.append(row)
            result.fetched += 1
            result.bytes += len(raw)
            batch_bytes += len(raw)
            if len(rows) >= _batch_messages() or batch_bytes >= BATCH_BYTES:
                commit()
                batch_bytes = 0
        if rows:
            commit()
        if delete:
            for number in to_delete:
                pop.delete(number)
            result.actions = len(to_delete)
        # Deletions take effect at QUIT (on leaving the with block), after every commit.
    if delete:
        Message.objects.filter(mailbox=mailbox, folder=folder, post_action_done=False).update(
            post_action_done=True
        )
    return result


# --- send --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Attachment:
    filename: str
    content: bytes
    content_type: str = "application/octet-stream"


def _check_addresses(field: str, addresses: Sequence[str]) -> None:
    """Each one plainly an address (a display name allowed): no control characters, one @."""
    for address in addresses:
        _, addr = parseaddr(address)
        if (
            not addr
            or addr.count("@") != 1
            or not all(addr.partition("@")[::2])
            or any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in addr)
            or any(ord(c) < 32 or ord(c) == 127 for c in address)
        ):
            raise MailboxInvalid({field: f"{address[:80]!r} is not an e-mail address"})


def compose(
    *,
    sender: str,
    to: Sequence[str] = (),
    cc: Sequence[str] = (),
    subject: str = "",
    text: str = "",
    html: str = "",
    attachments: Sequence[Attachment] = (),
) -> EmailMessage:
    message = EmailMessage()
    headers = (("sender", "From", [sender]), ("to", "To", to), ("cc", "Cc", cc))
    for given_as, header, addresses in headers:
        if addresses:
            _check_addresses(given_as, addresses)
            try:  # the header parser's own refusals (it raises IndexError on some input)
                message[header] = ", ".join(addresses)
            except (IndexError, ValueError, TypeError, HeaderParseError):
                raise MailboxInvalid({given_as: "not a list of e-mail addresses"}) from None
    message["Subject"] = subject
    message["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2] or None)
    message["Date"] = timezone.now().strftime("%a, %d %b %Y %H:%M:%S +0000")
    message.set_content(text or "")
    if html:
        message.add_alternative(html, subtype="html")
    for attachment in attachments:
        maintype, _, subtype = attachment.content_type.partition("/")
        message.add_attachment(
            attachment.content,
            maintype=maintype or "application",
            subtype=subtype or "octet-stream",
            filename=attachment.filename,
        )
    return message


def mailbox_send(
    *,
    mailbox: Mailbox,
    recipients: Sequence[str],
    raw: bytes,
    sender: str | None = None,
    user: Any = None,
) -> SendResult:
    """Send raw RFC 822 bytes to `recipients` (envelope: To, Cc and Bcc alike)."""
    if mailbox.protocol != Mailbox.Protocol.SMTP:
        raise MailboxError("Only outgoing (SMTP) mailboxes send.", kind="config")
    if not recipients:
        raise MailboxError("A message needs at least one recipient.", kind="invalid")
    _check_addresses("recipients", recipients)
    if sender:
        _check_addresses("sender", [sender])
    envelope_from = sender or mailbox.username

    def attempt(login: Login) -> SendResult:
        with SmtpClient(_endpoint(mailbox), login) as smtp:
            return smtp.send(envelope_from, list(recipients), raw)

    try:
        result = _with_login(mailbox, attempt)
    except (MailError, GrantUnusable, MailboxError) as exc:
        error = _mail_error(exc)
        with transaction.atomic():
            audit_record(
                actor=actor_for(user),
                user=user,
                target=mailbox,
                action="mailbox.sent",
                outcome="failed",
                message=error.message,
            )
        raise error from None
    with transaction.atomic():
        audit_record(
            actor=actor_for(user),
            user=user,
            target=mailbox,
            action="mailbox.sent",
            message=f"to {len(result.accepted)} recipient(s): {result.reply}",
        )
    return result
