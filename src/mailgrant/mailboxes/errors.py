"""What can go wrong with a mailbox, with a sentence for the administrator and a stable kind."""

from __future__ import annotations

from typing import Any


class MailboxError(Exception):
    """A mailbox operation failed; `message` is for the administrator, `kind` is stable."""

    def __init__(
        self,
        message: str,
        *,
        kind: str = "error",
        transcript: str = "",
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.kind = kind
        self.transcript = transcript
        self.details = details


class MailboxInvalid(MailboxError):
    """Fields that do not go together; `errors` maps each field to what is wrong with it."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()), kind="invalid")
        self.errors = errors
