"""The counters and histograms every process adds to; `/metrics` (api) serves them with the
gauges read from the database at scrape time (grants by health, poll lag, worker beats).

Under granian and beside the worker several processes count at once: prometheus-client's
multiprocess mode (PROMETHEUS_MULTIPROC_DIR, set before this module is imported: the `mailgrant`
command and the WSGI/ASGI entry points do) keeps each process's values in files of that folder
and `/metrics` sums them."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

REFRESHES = Counter(
    "mailgrant_refreshes",
    "Token refreshes at the provider, by outcome (ok, refused, failed) and why (keepalive, "
    "ahead, demand).",
    ["outcome", "trigger"],
)
REFRESH_SECONDS = Histogram(
    "mailgrant_refresh_seconds", "Duration of a token refresh at the provider.", ["outcome"]
)
FETCHES = Counter(
    "mailgrant_fetches",
    "Mailbox fetches, by protocol and outcome (ok, failed).",
    ["protocol", "outcome"],
)
FETCH_SECONDS = Histogram(
    "mailgrant_fetch_seconds", "Duration of one mailbox fetch.", ["protocol", "outcome"]
)
MESSAGES_STORED = Counter("mailgrant_messages_stored", "Messages stored durably.")
BROKER_REQUESTS = Counter(
    "mailgrant_broker_requests",
    "Token broker requests, by outcome (issued, refused).",
    ["outcome"],
)
BROKER_SECONDS = Histogram(
    "mailgrant_broker_seconds",
    "Token broker request latency.",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
POLL_LAG = Histogram(
    "mailgrant_poll_lag_seconds",
    "How late a mailbox was taken for its poll (claim time minus its next poll time).",
    buckets=(0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600),
)
WEBHOOK_ATTEMPTS = Counter(
    "mailgrant_webhook_attempts",
    "Webhook delivery attempts, by outcome (delivered, retry, failed, gone).",
    ["outcome"],
)
WEBHOOK_ATTEMPT_SECONDS = Histogram(
    "mailgrant_webhook_attempt_seconds", "Duration of one webhook POST.", ["outcome"]
)
