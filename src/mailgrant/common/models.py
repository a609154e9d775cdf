import functools

from django.conf import settings
from django.db import models


class AuditEvent(models.Model):
    """Who did what, when. Never a secret or token: services write only names and outcomes."""

    at = models.DateTimeField(auto_now_add=True, db_index=True)
    actor = models.CharField(max_length=200, help_text="user, API key or process")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    action = models.CharField(max_length=100, db_index=True)
    target_type = models.CharField(max_length=100, blank=True)
    target_id = models.CharField(max_length=100, blank=True)
    target_repr = models.CharField(max_length=300, blank=True)
    outcome = models.CharField(max_length=20, default="ok")
    message = models.TextField(blank=True)

    class Meta:
        ordering = ["-at", "-id"]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M:%S} {self.actor} {self.action} {self.target_repr}"


class AuditSpoolMark(models.Model):
    """How far an audit spool file has been moved into AuditEvent (common.audit_spool)."""

    file = models.CharField(max_length=200, unique=True)
    offset = models.BigIntegerField(default=0)

    def __str__(self) -> str:
        return f"{self.file} @ {self.offset}"


@functools.cache
def audit_insert_sql() -> str:
    """AuditEvent's row as one INSERT with %s placeholders, its columns read from the model
    (at, actor, user, action, target_type, target_id, target_repr, outcome, message): for the
    token broker, whose audit row the ORM's model and query building would cost more than the
    INSERT itself."""
    meta = AuditEvent._meta
    names = ["at", "actor", "user", "action", "target_type", "target_id", "target_repr"]
    columns = [str(meta.get_field(name).column) for name in [*names, "outcome", "message"]]  # type: ignore[union-attr]
    return (
        f"INSERT INTO {meta.db_table} ({', '.join(columns)}) "  # noqa: S608
        f"VALUES ({', '.join(['%s'] * len(columns))})"
    )
