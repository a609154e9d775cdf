"""The status overview: how every grant, client, mailbox and directory is, what is not ok and
why, and which workers are alive. One read for the admin's dashboard, `GET /api/v1/status`,
`mailgrant status` and the gauges of `/metrics`.

A few aggregate queries whatever the number of objects: the counts are one GROUP BY per kind,
the objects not ok one query per kind (most objects are ok), the workers one query.

An object switched off (a disabled client and its grants, a disabled mailbox or directory)
counts as `disabled` whatever its last health: it is off on purpose and makes nothing bad."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db.models import Case, CharField, Count, F, Q, QuerySet, Value, When
from django.utils import timezone

from mailgrant.common.health import Health, HealthView, Reason, reason_register
from mailgrant.directory.models import LdapDirectory
from mailgrant.mailboxes.models import Mailbox
from mailgrant.oauth.models import Grant, OAuthClient
from mailgrant.worker.models import Worker

KINDS = ("grant", "client", "mailbox", "directory")

NONE_ALIVE = Reason(
    "worker.none_alive",
    Health.WARNING,
    "No worker has beaten within its lease: nothing refreshes grants or polls mailboxes. "
    "Start mailgrant serve (it runs one worker) or mailgrant worker, and check its log.",
)
reason_register(NONE_ALIVE)

_BAD = [Health.WARNING.value, Health.FAILING.value, Health.NEEDS_REAUTHORIZATION.value]
# Of two healths as severe, the one that needs a person first.
_RANK = {
    Health.OK: 0,
    Health.DISABLED: 0,
    Health.WARNING: 1,
    Health.FAILING: 2,
    Health.NEEDS_REAUTHORIZATION: 3,
}


@dataclass(frozen=True)
class WorkerView:
    name: str
    hostname: str
    pid: int
    started_at: datetime
    beat_at: datetime
    beat_age_seconds: float
    concurrency: int
    activity: dict[str, Any]


@dataclass(frozen=True)
class StatusOverview:
    """`health` is the worst of every object's (and `warning` with `worker.none_alive` when no
    worker is alive); `counts[kind][health]` holds every health, zeros included."""

    health: Health
    reason: str
    hint: str
    checked_at: datetime
    counts: dict[str, dict[str, int]]
    problems: list[HealthView] = field(default_factory=list)
    workers: list[WorkerView] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        """0 all ok, 1 warning, 2 failing or needs_reauthorization (Nagios' convention)."""
        return self.health.severity


@dataclass(frozen=True)
class _Kind:
    name: str
    queryset: Callable[[], QuerySet[Any]]
    switched_off: Q
    describe: Callable[[Any], str]
    last_success: Callable[[Any], datetime | None]
    next_attempt: Callable[[Any], datetime | None]
    message: Callable[[Any], str]


_KINDS = (
    _Kind(
        "grant",
        lambda: Grant.objects.select_related("client"),
        Q(client__status=OAuthClient.Status.DISABLED) | Q(health=Health.DISABLED.value),
        lambda g: Grant.describe(client_name=g.client.name, account=g.account),
        lambda g: g.last_refresh_at or g.authorized_at,
        lambda g: g.next_refresh_at,
        lambda g: g.last_error,
    ),
    _Kind(
        "client",
        lambda: OAuthClient.objects.all(),
        Q(status=OAuthClient.Status.DISABLED) | Q(health=Health.DISABLED.value),
        lambda c: c.name,
        lambda c: None,
        lambda c: None,
        lambda c: "",
    ),
    _Kind(
        "mailbox",
        lambda: Mailbox.objects.all(),
        Q(enabled=False) | Q(health=Health.DISABLED.value),
        lambda m: m.name,
        lambda m: m.last_success_at,
        lambda m: m.next_poll_at,
        lambda m: m.last_error,
    ),
    _Kind(
        "directory",
        lambda: LdapDirectory.objects.all(),
        Q(status=LdapDirectory.Status.DISABLED) | Q(health=Health.DISABLED.value),
        lambda d: d.name,
        lambda d: d.last_success_at,
        lambda d: d.next_sync_at,
        lambda d: d.last_error,
    ),
)


def _effective(kind: _Kind) -> QuerySet[Any]:
    return kind.queryset().annotate(
        effective_health=Case(
            When(kind.switched_off, then=Value(Health.DISABLED.value)),
            default=F("health"),
            output_field=CharField(),
        )
    )


def health_counts() -> dict[str, dict[str, int]]:
    """Every kind's number of objects in each health (one GROUP BY per kind)."""
    counts: dict[str, dict[str, int]] = {}
    for kind in _KINDS:
        by_health = {h.value: 0 for h in Health}
        rows = (
            _effective(kind)
            .order_by()
            .values("effective_health")
            .annotate(n=Count("pk"))
            .values_list("effective_health", "n")
        )
        for health, n in rows:
            by_health[health if health in by_health else Health.FAILING.value] += n
        counts[kind.name] = by_health
    return counts


def health_problems() -> list[HealthView]:
    """Every object that is not ok (and not switched off), worst first, then the longest
    standing."""
    problems: list[HealthView] = []
    for kind in _KINDS:
        for obj in _effective(kind).filter(effective_health__in=_BAD):
            problems.append(health_view(kind.name, obj))
    epoch = datetime.min.replace(tzinfo=timezone.get_current_timezone())
    problems.sort(key=lambda p: (-_RANK[p.health], p.since or epoch, p.kind, p.id))
    return problems


def health_view(kind: str, obj: Any) -> HealthView:
    """One object's health as it is shown (`kind` one of KINDS)."""
    spec = next(k for k in _KINDS if k.name == kind)
    health = getattr(obj, "effective_health", obj.health)
    try:
        state = Health(health)
    except ValueError:
        state = Health.FAILING
    return HealthView(
        kind=kind,
        id=obj.pk,
        name=spec.describe(obj),
        health=state,
        reason=obj.health_reason,
        hint=obj.health_hint,
        message=spec.message(obj),
        since=obj.health_since,
        consecutive_failures=obj.consecutive_failures,
        last_success_at=spec.last_success(obj),
        next_attempt_at=spec.next_attempt(obj),
    )


def worker_lease() -> timedelta:
    return timedelta(seconds=settings.MAILGRANT_WORKER_LEASE)


def workers_alive(*, now: datetime | None = None) -> list[WorkerView]:
    """The workers that beat within their lease and have not said they stopped."""
    now = now or timezone.now()
    alive = Worker.objects.filter(stopped_at__isnull=True, beat_at__gte=now - worker_lease())
    return [
        WorkerView(
            name=w.name,
            hostname=w.hostname,
            pid=w.pid,
            started_at=w.started_at,
            beat_at=w.beat_at,
            beat_age_seconds=max((now - w.beat_at).total_seconds(), 0.0),
            concurrency=w.concurrency,
            activity=w.activity if isinstance(w.activity, dict) else {},
        )
        for w in alive.order_by("name")
    ]


def poll_lag_seconds(*, now: datetime | None = None) -> float:
    """How late the most overdue poll is: now minus the oldest `next_poll_at` that has passed
    among the enabled incoming mailboxes (0 when none is due)."""
    now = now or timezone.now()
    oldest = (
        Mailbox.objects.filter(
            enabled=True, direction=Mailbox.Direction.INCOMING, next_poll_at__lte=now
        )
        .exclude(health=Health.NEEDS_REAUTHORIZATION.value)
        .order_by("next_poll_at")
        .values_list("next_poll_at", flat=True)
        .first()
    )
    if oldest is None or not isinstance(oldest, datetime):
        return 0.0
    return max((now - oldest).total_seconds(), 0.0)


def status_overview(*, now: datetime | None = None) -> StatusOverview:
    """Everything at once (see the module's docstring)."""
    now = now or timezone.now()
    counts = health_counts()
    problems = health_problems()
    workers = workers_alive(now=now)
    worst = max(
        (Health(h) for kind in counts.values() for h, n in kind.items() if n),
        key=lambda h: _RANK[h],
        default=Health.OK,
    )
    health, reason, hint = worst, "", ""
    if worst.severity == 0:
        health = Health.OK
    if not workers and _RANK[health] < _RANK[Health.WARNING]:
        health, reason, hint = Health.WARNING, NONE_ALIVE.code, NONE_ALIVE.hint
    elif not workers:
        reason, hint = NONE_ALIVE.code, NONE_ALIVE.hint
    return StatusOverview(
        health=health,
        reason=reason,
        hint=hint,
        checked_at=now,
        counts=counts,
        problems=problems,
        workers=workers,
    )
