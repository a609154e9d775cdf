"""Existing grants and clients get the health their state means, and every authorized grant
a first refresh within a day (then the worker keeps it on schedule, oauth.schedule): a grant
idle since before the worker existed is kept alive too, spread out over the day."""

import random
from datetime import timedelta

from django.db import migrations
from django.utils import timezone

_REAUTHORIZE = (
    "The provider refused the refresh token (expired, revoked or already used): validate the "
    "grant again (Re-authorize)."
)
_ERROR = (
    "The last refresh failed (the message has it): fix what it names, then validate the grant "
    "again."
)
_DISABLED = "The client is disabled: enable it to use its grants again."


def forwards(apps, schema_editor):
    Grant = apps.get_model("oauth", "Grant")
    OAuthClient = apps.get_model("oauth", "OAuthClient")
    now = timezone.now()
    OAuthClient.objects.filter(status="disabled").update(
        health="disabled", health_reason="client.disabled", health_hint=_DISABLED, health_since=now
    )
    Grant.objects.filter(client__status="disabled").update(
        health="disabled", health_reason="client.disabled", health_hint=_DISABLED, health_since=now
    )
    live = Grant.objects.exclude(client__status="disabled")
    live.filter(state="reauthorization_required").update(
        health="needs_reauthorization",
        health_reason="refresh.invalid_grant",
        health_hint=_REAUTHORIZE,
        health_since=now,
        next_refresh_at=None,
    )
    live.filter(state="error").update(
        health="failing",
        health_reason="provider.error",
        health_hint=_ERROR,
        health_since=now,
        next_refresh_at=None,
    )
    rng = random.Random()
    for pk in live.filter(state="authorized", next_refresh_at__isnull=True).values_list(
        "pk", flat=True
    ):
        Grant.objects.filter(pk=pk).update(
            next_refresh_at=now + timedelta(seconds=rng.uniform(0, 86400))
        )


class Migration(migrations.Migration):
    dependencies = [("oauth", "0015_grant_refresh_claim")]

    operations = [migrations.RunPython(forwards, migrations.RunPython.noop)]
