"""The workers, as their heartbeats left them: read-only (a worker writes its own row)."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest
from django.utils import timezone
from django.utils.timesince import timesince

from mailgrant.worker.models import Worker


@admin.register(Worker)
class WorkerAdmin(admin.ModelAdmin):
    list_display = (
        "name",
        "hostname",
        "pid",
        "started_at",
        "last_beat",
        "state",
        "concurrency",
        "doing",
    )
    list_filter = ("hostname",)
    search_fields = ("name", "hostname")
    readonly_fields = (
        "name",
        "hostname",
        "pid",
        "started_at",
        "beat_at",
        "stopped_at",
        "concurrency",
        "activity",
    )

    @admin.display(description="last beat", ordering="beat_at")
    def last_beat(self, worker: Worker) -> str:
        return f"{worker.beat_at:%Y-%m-%d %H:%M:%S} ({timesince(worker.beat_at)} ago)"

    @admin.display(description="state")
    def state(self, worker: Worker) -> str:
        return worker.state(now=timezone.now())

    @admin.display(description="activity")
    def doing(self, worker: Worker) -> str:
        return activity_summary(worker.activity)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


def activity_summary(activity: dict[str, Any]) -> str:
    """One line: what it runs now, what it has done, how late its last polls were taken."""
    if not isinstance(activity, dict):
        return ""
    counts = activity.get("counts") or {}
    parts = [
        f"{activity.get('running_count', 0)} running (peak {activity.get('peak', 0)})",
        f"{counts.get('done', 0)} done, {counts.get('failed', 0)} failed, "
        f"{counts.get('rounds', 0)} rounds",
    ]
    poll = (activity.get("jobs") or {}).get("mailboxes_poll_due") or {}
    if isinstance(poll, dict) and poll.get("claimed"):
        parts.append(f"last poll round: {poll['claimed']} taken, lag up to {poll['lag_max']} s")
    for name, service in (activity.get("services") or {}).items():
        if isinstance(service, dict) and service:
            parts.append(f"{name}: " + ", ".join(f"{k} {v}" for k, v in service.items()))
    return "; ".join(parts)
