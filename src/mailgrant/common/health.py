"""Health: what state a grant, client, mailbox or directory is in, why, and what fixes it.

No Django here: the vocabulary (healths, reasons with their hints, backoff) is plain data that
protocol-facing code, providers and the status pages share. The fields live on each model
(common.models.HealthTracked); each app's services decide its transitions.

A reason code is stable (`area.what`, e.g. `refresh.invalid_grant`): monitoring and the
README's table key on it. Its hint is the fix in plain words; a provider may give a more
precise hint for the same code (providers' `error_reasons`)."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum


class Health(StrEnum):
    OK = "ok"
    WARNING = "warning"
    FAILING = "failing"
    NEEDS_REAUTHORIZATION = "needs_reauthorization"
    DISABLED = "disabled"

    @property
    def label(self) -> str:
        return self.value.replace("_", " ").capitalize()

    @property
    def severity(self) -> int:
        """0 fine (ok, or switched off on purpose), 1 warning, 2 failing: `mailgrant status`'s
        exit code."""
        return _SEVERITY[self]


_SEVERITY = {
    Health.OK: 0,
    Health.DISABLED: 0,
    Health.WARNING: 1,
    Health.FAILING: 2,
    Health.NEEDS_REAUTHORIZATION: 2,
}

HEALTH_CHOICES = [(h.value, h.label) for h in Health]


@dataclass(frozen=True)
class Reason:
    """Why an object is not ok: a stable code, the health it means, whether trying again may
    succeed on its own (`transient`), and the fix for a person."""

    code: str
    health: Health
    hint: str
    transient: bool = False


REASONS: dict[str, Reason] = {}


def reason_register(*reasons: Reason) -> None:
    """Add reasons to the registry (each app registers its own at import); a code means one
    thing, so registering it again with another meaning is a programming error."""
    for reason in reasons:
        known = REASONS.get(reason.code)
        if known is not None and known != reason:
            raise ValueError(f"Reason {reason.code} is already registered differently.")
        REASONS[reason.code] = reason


def reason_of(code: str) -> Reason:
    """The registered reason; an unknown code is a failing, non-transient `unknown` one with
    no hint beyond the message (never an exception: a status page must render)."""
    return REASONS.get(code) or Reason(code, Health.FAILING, "", transient=False)


reason_register(
    Reason(
        "unexpected",
        Health.FAILING,
        "mailgrant hit an error it does not know; the log has the details. It tries again "
        "with backoff.",
        transient=True,
    ),
    Reason(
        "connect.refused",
        Health.FAILING,
        "The server refused the connection: check the host and port, and that the server is "
        "running. mailgrant tries again with backoff.",
        transient=True,
    ),
    Reason(
        "connect.timeout",
        Health.FAILING,
        "The server did not answer in time: check the host, the port and any firewall "
        "between. mailgrant tries again with backoff.",
        transient=True,
    ),
    Reason(
        "connect.dns",
        Health.FAILING,
        "The host name does not resolve: check its spelling and the machine's DNS.",
        transient=True,
    ),
    Reason(
        "tls.failed",
        Health.FAILING,
        "The TLS handshake failed: check the security setting (SSL/TLS or STARTTLS) against "
        "the port, and the server's certificate (or Verify SSL).",
        transient=False,
    ),
    Reason(
        "provider.unreachable",
        Health.FAILING,
        "The provider's token endpoint could not be reached: check the network, the proxy "
        "and the endpoint URL. mailgrant tries again with backoff.",
        transient=True,
    ),
)


def backoff_seconds(
    failures: int,
    *,
    base: float,
    cap: float,
    rng: random.Random | None = None,
) -> float:
    """How long to wait after `failures` consecutive failures (1 for the first): exponential
    from `base`, capped at `cap`, with "equal jitter" (half fixed, half random) so that many
    objects failing together do not all retry in the same second."""
    rng = rng or random  # type: ignore[assignment]
    step = min(cap, base * (2 ** max(failures - 1, 0)))
    return step / 2 + rng.uniform(0, step / 2)  # type: ignore[union-attr]


def jittered(seconds: float, *, spread: float = 0.1, rng: random.Random | None = None) -> float:
    """`seconds` moved earlier by up to `spread` of it: periodic work of many objects spreads
    out instead of bunching, and never runs later than promised."""
    rng = rng or random  # type: ignore[assignment]
    return seconds * (1 - rng.uniform(0, spread))  # type: ignore[union-attr]


@dataclass(frozen=True)
class HealthView:
    """An object's health as the dashboard, the API, `mailgrant status` and the metrics show it."""

    kind: str  # grant, client, mailbox, directory
    id: int
    name: str
    health: Health
    reason: str
    hint: str
    message: str
    since: datetime | None
    consecutive_failures: int
    last_success_at: datetime | None
    next_attempt_at: datetime | None
