"""Standard Webhooks signing (the `standardwebhooks` package): secrets and the headers of one
attempt. Django-free."""

from __future__ import annotations

import base64
import secrets
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version

from standardwebhooks import Webhook

SECRET_PREFIX = "whsec_"


def _version() -> str:
    try:
        return version("mailgrant")
    except PackageNotFoundError:
        return "0"


USER_AGENT = f"mailgrant/{_version()}"


def secret_generate() -> str:
    """A new signing secret: `whsec_` and the base64 of 32 random bytes."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def signed_headers(*, secret: str, msg_id: str, at: datetime, body: bytes) -> dict[str, str]:
    """The headers of one attempt: the id is the event's on every retry, the timestamp and
    signature the attempt's own."""
    at = at.astimezone(UTC)
    signature = Webhook(secret).sign(msg_id, at, body.decode())
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": signature,
        "content-type": "application/json",
        "user-agent": USER_AGENT,
    }
