"""Why a webhook endpoint is not ok, each with the fix in plain words."""

from __future__ import annotations

from mailgrant.common.health import Health, Reason, reason_register

# An endpoint failing this long (every attempt since its last success) turns failing.
FAILING_AFTER_SECONDS = 24 * 3600

REASON_FAILING = Reason(
    "webhook.failing",
    Health.FAILING,
    "Every delivery to this endpoint has failed for a day (its deliveries' last attempts say "
    "how): check that the URL is served, answers 2xx within MAILGRANT_WEBHOOK_TIMEOUT and "
    "does not redirect. mailgrant keeps retrying each delivery for about three days.",
    transient=True,
)
REASON_GONE = Reason(
    "webhook.gone",
    Health.DISABLED,
    "The endpoint answered 410 Gone, so mailgrant disabled it and cancelled its pending "
    "deliveries: enable it again once the URL takes deliveries (and redeliver what it missed).",
)
REASON_DISABLED = Reason(
    "webhook.disabled",
    Health.DISABLED,
    "The endpoint is disabled: nothing is delivered to it until it is enabled.",
)

reason_register(REASON_FAILING, REASON_GONE, REASON_DISABLED)
