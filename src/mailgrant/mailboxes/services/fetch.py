"""Fetching into the store: a message's post-fetch action runs on the server only once the
message is durable here (file written and synced, row committed)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import QuerySet
from django.utils import timezone

from mailgrant.common import metrics as METRICS
from mailgrant.common.audit import SYSTEM, WORKER, Actor, AuditAction, audit_record
from mailgrant.common.errors import NeedsAdmin, ServiceError
from mailgrant.common.events import Subject, event_build, event_sequence_take, events_record
from mailgrant.mailboxes.health import Failure, mailbox_failure_of
from mailgrant.mailboxes.models import Mailbox, Message
from mailgrant.mailboxes.protocol.imap import ImapClient, ServerMessage
from mailgrant.mailboxes.protocol.pop3 import Pop3Client
from mailgrant.mailboxes.protocol.transport import (
    Login,
    MailError,
    TooLarge,
)
from mailgrant.mailboxes.services.login import (
    mailbox_endpoint,
    mailbox_error_of,
    with_mailbox_login,
)
from mailgrant.mailboxes.services.outcome import mailbox_due_after, mailbox_health_apply
from mailgrant.mailboxes.store import envelope, message_path, store_root, sync, write_message

log = logging.getLogger(__name__)


BATCH_BYTES = 16 * 1024 * 1024


MAX_MESSAGE_BYTES = 100 * 1024 * 1024

# Messages one fetch leaves on the server for being larger than the server said, each costing a
# new connection; past that the fetch fails (a server that understates them all is broken).
MAX_SKIPPED = 10


@dataclass
class FetchResult:
    fetched: int = 0
    bytes: int = 0
    already_stored: int = 0
    resynced: int = 0
    actions: int = 0
    errors: list[str] = field(default_factory=list)


def mailbox_fetch(
    *, mailbox: Mailbox, actor: Actor = SYSTEM, progress: Callable[[int, int], None] | None = None
) -> FetchResult:
    """Fetch new messages into the store; a message's post-fetch action runs on the server only
    after it is stored and committed here. Records the outcome on the mailbox."""
    now = timezone.now()
    started = time.monotonic()
    if mailbox.direction != Mailbox.Direction.INCOMING:
        raise NeedsAdmin("Only incoming mailboxes fetch.", code="config")
    try:
        fetch_once = _fetch_imap if mailbox.protocol == Mailbox.Protocol.IMAP else _fetch_pop3
        result = with_mailbox_login(
            mailbox=mailbox,
            work=lambda login: _skipping_understated(
                lambda skipped, result: fetch_once(mailbox, login, progress, skipped, result)
            ),
        )
    except (MailError, ServiceError) as exc:
        failure = mailbox_failure_of(exc, protocol=mailbox.protocol)
        error = mailbox_error_of(exc)
        _record_outcome(mailbox, now, error=error.message, actor=actor, failure=failure)
        _count(mailbox, "failed", started)
        raise error from None
    _record_outcome(mailbox, now, error="", actor=actor, result=result)
    _count(mailbox, "ok", started)
    if result.fetched:
        METRICS.MESSAGES_STORED.inc(result.fetched)
    return result


def _count(mailbox: Mailbox, outcome: str, started: float) -> None:
    METRICS.FETCHES.labels(protocol=mailbox.protocol, outcome=outcome).inc()
    METRICS.FETCH_SECONDS.labels(protocol=mailbox.protocol, outcome=outcome).observe(
        time.monotonic() - started
    )


def _record_outcome(
    mailbox: Mailbox,
    started: Any,
    *,
    error: str,
    actor: Actor,
    result: FetchResult | None = None,
    failure: Failure | None = None,
) -> None:
    """The fetch's outcome on the mailbox, in one transaction with its health: ok again on
    success; on failure one more, with its reason and hint, and the next attempt backed off
    when the failure may pass by itself (a dead server is not hammered)."""
    fields: dict[str, Any] = {
        "last_fetch_at": started,
        "last_error": error,
    }
    if not error:
        fields["last_success_at"] = timezone.now()
    with transaction.atomic():
        fields.update(mailbox_health_apply(mailbox=mailbox, now=started, failure=failure))
        fields["next_poll_at"] = mailbox_due_after(mailbox=mailbox, now=started, failure=failure)
        Mailbox.objects.filter(pk=mailbox.pk).update(**fields)
        for key, value in fields.items():
            setattr(mailbox, key, value)
        mailbox.health_announce()
        if error or actor not in (SYSTEM, WORKER) or (result and result.fetched):
            audit_record(
                actor=actor,
                target=mailbox,
                action=AuditAction.MAILBOX_FETCHED,
                outcome="failed" if error else "ok",
                message=error or f"{result.fetched if result else 0} new message(s)",
            )


def _skipping_understated(
    fetch_once: Callable[[set[str], FetchResult], FetchResult],
) -> FetchResult:
    """Fetch; when a message turns out larger than the server said (the connection is dropped
    then, what was stored before it kept), fetch again on a new connection without it: it
    stays on the server, named in the errors, and the messages after it still come."""
    result = FetchResult()
    skipped: set[str] = set()
    while True:
        try:
            fetch_once(skipped, result)
            result.errors = list(dict.fromkeys(result.errors))  # each try lists the too big
            return result
        except TooLarge as exc:
            if not exc.message_key or exc.message_key in skipped or len(skipped) >= MAX_SKIPPED:
                raise
            skipped.add(exc.message_key)
            result.errors.append(exc.message)


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
    mailbox: Mailbox,
    login: Login,
    progress: Callable[[int, int], None] | None,
    skipped: set[str],
    result: FetchResult,
) -> FetchResult:
    folder = mailbox.folder or "INBOX"
    with ImapClient(mailbox_endpoint(mailbox=mailbox), login) as imap:
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
        result.already_stored = len(on_server) - len(new) - result.fetched  # not by an earlier try
        new = [m for m in new if str(m.uid) not in skipped]
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
                try:
                    fetched = [
                        (str(uid), raw)
                        for uid, raw in imap.fetch(batch, max_bytes=MAX_MESSAGE_BYTES)
                    ]
                except MailError:
                    # The batch before is stored and durable: its rows stay (its post-fetch
                    # action runs on the next fetch), this batch stays on the server.
                    if in_flight:
                        _insert_messages(mailbox, in_flight.result())
                    raise
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
    _insert_messages(mailbox, rows)
    uids = [int(r.uid) for r in rows]
    _imap_action(mailbox, imap, uids, destination.folder, destination.uidvalidity, result)


@dataclass(frozen=True)
class _Row:
    uid: str
    path: str
    values: tuple[Any, ...]


# A row's values (_stored_row) follow the model's field order; the columns are read from it.
_INSERT_COLUMNS = tuple(str(f.column) for f in Message._meta.concrete_fields if not f.primary_key)


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


def _insert_messages(mailbox: Mailbox, rows: Sequence[_Row]) -> None:
    """One executemany, and a message.received event for each row new to the index, in one
    transaction: a message is announced exactly when it is durable. Django's bulk_create spent
    more preparing values than the database spent storing them (bench/fetch.py). A row a killed
    run already committed is skipped (its event was committed with it)."""
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
    folder, uidvalidity = rows[0].values[1], rows[0].values[2]
    batch = Message.objects.filter(
        mailbox_id=mailbox.pk, folder=folder, uidvalidity=uidvalidity, uid__in=[r.uid for r in rows]
    )
    with transaction.atomic():
        known = set(batch.values_list("uid", flat=True))
        with connection.cursor() as cursor:
            cursor.executemany(sql, [r.values for r in rows if r.uid not in known])
        new = [r.uid for r in rows if r.uid not in known]
        if new:
            _announce_received(mailbox, batch.filter(uid__in=new).order_by("pk"))


def _announce_received(mailbox: Mailbox, messages: QuerySet[Message]) -> None:
    stored = list(
        messages.values(
            "pk", "folder", "uid", "message_id", "sender", "recipients", "subject", "date", "size"
        )
    )
    first = event_sequence_take(key=f"mailbox:{mailbox.pk}", count=len(stored))
    base = f"{settings.MAILGRANT_BASE_URL}/api/v1/messages"
    about = Subject.of(mailbox)
    events_record(
        [
            event_build(
                type="message.received",
                subject=about,
                data={
                    "mailbox": {"id": mailbox.pk, "name": mailbox.name},
                    "message": {
                        "id": row["pk"],
                        "message_id": row["message_id"],
                        "from": row["sender"],
                        "to": row["recipients"],
                        "subject": row["subject"],
                        "date": row["date"].isoformat() if row["date"] else None,
                        "size": row["size"],
                        "folder": row["folder"],
                        "uid": row["uid"],
                        "raw_url": f"{base}/{row['pk']}/raw",
                    },
                },
                mailbox_id=mailbox.pk,
                client_id=mailbox.oauth_client_id,
                sequence=first + n,
            )
            for n, row in enumerate(stored)
        ]
    )


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
    mailbox: Mailbox,
    login: Login,
    progress: Callable[[int, int], None] | None,
    skipped: set[str],
    result: FetchResult,
) -> FetchResult:
    folder = "INBOX"
    destination = _destination(mailbox, folder, 0)
    delete = mailbox.post_fetch_action == "delete"
    with Pop3Client(mailbox_endpoint(mailbox=mailbox), login) as pop:
        on_server = pop.messages()
        current = set(
            Message.objects.filter(mailbox=mailbox, folder=folder).values_list("uid", flat=True)
        )
        new = [m for m in on_server if m.uidl not in current]
        result.already_stored = len(on_server) - len(new) - result.fetched  # not by an earlier try
        new = [m for m in new if m.uidl not in skipped]
        to_delete = [m.number for m in on_server if m.uidl in current] if delete else []
        rows: list[_Row] = []

        def commit() -> None:
            sync(destination.root, [r.path for r in rows])
            _insert_messages(mailbox, rows)
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
            try:
                raw = pop.retrieve(m, max_bytes=MAX_MESSAGE_BYTES)
            except MailError:
                if rows:  # what is written is kept; this one and the rest stay on the server
                    sync(destination.root, [r.path for r in rows])
                    _insert_messages(mailbox, rows)
                raise
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
