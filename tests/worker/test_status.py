"""The status overview: counts by health, everything not ok with its hint, the workers alive,
and the overall state (the worst, or a warning when no worker beats)."""

from __future__ import annotations

import contextlib
import importlib
import pkgutil
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.utils import timezone

from mailgrant.common.health import Health
from mailgrant.mailboxes.models import Mailbox
from mailgrant.worker.status import poll_lag_seconds, status_overview
from tests.worker import world

pytestmark = pytest.mark.django_db


def test_all_ok_with_a_beating_worker(make_client: Any, make_grant: Any) -> None:
    make_grant(make_client(name="Microsoft 365"))
    world.mailbox(name="support")
    world.beating_worker()

    status = status_overview()

    assert status.health is Health.OK and status.exit_code == 0
    assert status.problems == []
    assert status.counts["grant"]["ok"] == 1
    assert status.counts["client"]["ok"] == 1
    assert status.counts["mailbox"] == {h.value: int(h is Health.OK) for h in Health}
    assert status.counts["directory"]["ok"] == 0
    assert [w.name for w in status.workers] == ["host:1:start"]
    assert 0 <= status.workers[0].beat_age_seconds < 60


def test_no_worker_alive_is_a_warning_even_when_all_is_ok() -> None:
    world.beating_worker(name="dead", age=3600)
    stopped = world.beating_worker(name="stopped")
    stopped.stopped_at = timezone.now()
    stopped.save()

    status = status_overview()

    assert status.health is Health.WARNING and status.exit_code == 1
    assert status.reason == "worker.none_alive"
    assert "mailgrant worker" in status.hint
    assert status.workers == []


def test_each_object_not_ok_is_listed_with_its_hint_and_the_worst_wins(
    make_client: Any, make_grant: Any
) -> None:
    world.beating_worker()
    client = make_client(name="Microsoft 365")
    grant = world.needing_reauthorization(make_grant(client), message="invalid_grant: revoked")
    box = world.failing(world.mailbox(name="support", client=client), message="refused")
    box.next_poll_at = timezone.now() + timedelta(minutes=4)
    box.save()
    world.warning(make_client(name="Google"))
    world.mailbox(name="fine")

    status = status_overview()

    assert status.health is Health.NEEDS_REAUTHORIZATION and status.exit_code == 2
    by_kind = {p.kind: p for p in status.problems}
    assert [p.kind for p in status.problems] == ["grant", "mailbox", "client"]  # worst first
    assert by_kind["grant"].id == grant.pk
    assert by_kind["grant"].name == "Microsoft 365: alice@example.test"
    assert by_kind["grant"].hint.startswith("The provider refused")
    assert by_kind["grant"].message == "invalid_grant: revoked"
    mailbox = by_kind["mailbox"]
    assert (mailbox.name, mailbox.health, mailbox.reason) == (
        "support",
        Health.FAILING,
        "connect.refused",
    )
    assert mailbox.consecutive_failures == 3
    assert "host and port" in mailbox.hint
    assert mailbox.message == "refused"
    assert mailbox.next_attempt_at == box.next_poll_at
    assert mailbox.since is not None
    assert by_kind["client"].health is Health.WARNING
    assert status.counts["mailbox"]["failing"] == 1 and status.counts["mailbox"]["ok"] == 1


def test_failing_alone_is_exit_code_two(make_client: Any) -> None:
    world.beating_worker()
    world.failing(world.directory(name="staff"), "connect.timeout")

    status = status_overview()

    assert status.health is Health.FAILING and status.exit_code == 2
    assert [(p.kind, p.name) for p in status.problems] == [("directory", "staff")]


def test_switched_off_objects_count_as_disabled_and_make_nothing_bad(
    make_client: Any, make_grant: Any
) -> None:
    world.beating_worker()
    off = make_client(name="Old tenant", status="disabled")
    world.needing_reauthorization(make_grant(off))
    world.failing(world.mailbox(name="archive", enabled=False))
    world.failing(world.directory(name="old", status="disabled"))

    status = status_overview()

    assert status.health is Health.OK and status.problems == []
    for kind in ("grant", "client", "mailbox", "directory"):
        assert status.counts[kind]["disabled"] == 1, kind


def test_a_few_queries_whatever_the_number_of_objects(
    make_client: Any, make_grant: Any, django_assert_max_num_queries: Any
) -> None:
    world.beating_worker()
    client = make_client(name="Microsoft 365")
    for n in range(150):
        box = world.mailbox(name=f"box-{n}", client=client)
        if n % 2:
            world.failing(box)
    for n in range(20):
        world.needing_reauthorization(make_grant(client, account=f"user{n}@example.test"))

    with django_assert_max_num_queries(9):
        status = status_overview()

    assert len(status.problems) == 75 + 20


def test_poll_lag_is_the_oldest_due_enabled_incoming_mailbox() -> None:
    now = timezone.now()
    assert poll_lag_seconds(now=now) == 0
    world.mailbox(name="on-time", next_poll_at=now + timedelta(seconds=30))
    world.mailbox(name="late", next_poll_at=now - timedelta(seconds=90))
    world.mailbox(name="off", enabled=False, next_poll_at=now - timedelta(hours=1))
    world.mailbox(
        name="out",
        direction=Mailbox.Direction.OUTGOING,
        protocol="smtp",
        next_poll_at=now - timedelta(hours=1),
    )

    assert poll_lag_seconds(now=now) == pytest.approx(90)


# --- the admin index's dashboard, as far as the user may see --------------------------------


def test_the_dashboard_shows_only_the_kinds_the_user_may_view(
    client: Any, django_user_model: Any, make_client: Any
) -> None:
    from django.contrib.auth.models import Permission

    world.beating_worker()
    world.failing(world.mailbox(name="support"), message="refused")
    world.warning(make_client(name="Google"))
    staff = django_user_model.objects.create_user("desk", "desk@example.test", "pw", is_staff=True)
    client.force_login(staff)

    assert b"mailgrant-health" not in client.get("/admin/").content  # no view permission

    staff.user_permissions.set([Permission.objects.get(codename="view_mailbox")])
    page = client.get("/admin/").content.decode()
    assert 'id="mailgrant-health"' in page
    assert 'data-kind="mailbox"' in page and "support" in page
    assert "Google" not in page and 'data-kind="client"' not in page
    assert "Test connection" not in page and ">View</a>" in page  # it may not change the mailbox

    staff.user_permissions.add(Permission.objects.get(codename="change_mailbox"))
    assert "Test connection" in client.get("/admin/").content.decode()


def test_the_dashboard_reads_in_a_few_queries(
    admin_client: Any, make_client: Any, make_grant: Any, django_assert_max_num_queries: Any
) -> None:
    world.beating_worker()
    client = make_client(name="Microsoft 365")
    for n in range(40):
        world.failing(world.mailbox(name=f"box-{n}", client=client))
        world.needing_reauthorization(make_grant(client, account=f"user{n}@example.test"))
    admin_client.get("/admin/")  # the session and the permissions cached

    with django_assert_max_num_queries(25):
        page = admin_client.get("/admin/").content.decode()

    assert page.count('class="mailgrant-problem"') == 80


# --- the README's table of reason codes ------------------------------------------------------

README = Path(__file__).resolve().parents[2] / "README.md"
BEGIN, END = "<!-- reasons: generated, tests/worker/test_status.py -->", "<!-- /reasons -->"


def _registered() -> dict[str, Any]:
    """Every reason registered at import: each app's `health` module (and worker.status)."""
    import mailgrant

    for module in pkgutil.iter_modules(mailgrant.__path__):
        with contextlib.suppress(ModuleNotFoundError):
            importlib.import_module(f"mailgrant.{module.name}.health")
    importlib.import_module("mailgrant.worker.status")
    from mailgrant.common.health import REASONS

    return dict(REASONS)


def reasons_table() -> str:
    rows = ["| code | health | retried alone | what fixes it |", "|---|---|---|---|"]
    for code, reason in sorted(_registered().items()):
        hint = reason.hint.replace("|", "\\|")
        rows.append(
            f"| `{code}` | {reason.health.value} | {'yes' if reason.transient else 'no'} | {hint} |"
        )
    return "\n".join(rows)


def test_the_readme_lists_every_reason_code_as_registered() -> None:
    text = README.read_text("utf-8")
    assert BEGIN in text and END in text
    listed = text.split(BEGIN, 1)[1].split(END, 1)[0].strip()
    expected = reasons_table()
    assert listed == expected, (
        "README.md's reason table is not the registered reasons: rewrite it with "
        "`.venv/bin/python -m tests.worker.readme_reasons`, or put this between the markers:"
        f"\n\n{expected}\n"
    )
