from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.db import models
from django.utils import timezone


class Worker(models.Model):
    """A running `mailgrant worker` (or the one `mailgrant serve` embeds): it beats while it
    lives; one whose beat is older than its lease is dead, and its claims run out."""

    name = models.CharField(max_length=200, unique=True, help_text="host:pid:start")
    hostname = models.CharField(max_length=255)
    pid = models.PositiveIntegerField()
    started_at = models.DateTimeField()
    beat_at = models.DateTimeField(db_index=True)
    stopped_at = models.DateTimeField(null=True, blank=True)
    concurrency = models.PositiveIntegerField(default=1)
    # What it is doing, as of its last beat: running jobs, IDLE connections, rounds done.
    activity = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-beat_at"]

    def __str__(self) -> str:
        return self.name

    def state(self, *, now: datetime | None = None) -> str:
        """stopped (it said so), dead (no beat within a lease: its claims have run out or
        will), or alive."""
        if self.stopped_at is not None:
            return "stopped"
        now = now or timezone.now()
        lease = timedelta(seconds=max(5, int(settings.MAILGRANT_WORKER_LEASE)))
        return "alive" if self.beat_at >= now - lease else "dead"
