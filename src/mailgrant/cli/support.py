"""What the administrator's commands (client, grant, mailbox) share: errors as one line, secrets
from a file or stdin only, JSON output, confirmation before a delete."""

from __future__ import annotations

import json
import logging
import sys
from argparse import ArgumentParser, ArgumentTypeError, BooleanOptionalAction
from datetime import datetime
from pathlib import Path
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.db import models

from mailgrant.common.crypto import VaultError
from mailgrant.common.errors import ServiceError
from mailgrant.common.redaction import redact


class AdminCommand(BaseCommand):
    """A command over mailgrant's services: every failure ends as one CommandError line (exit
    status 1), usage errors stay argparse's (exit status 2), nothing ends as a traceback unless
    --traceback asks for it. The command reports its own outcome, so log records show only
    with --verbosity 2 or more."""

    def execute(self, *args: Any, **options: Any) -> Any:
        quiet = options.get("verbosity", 1) < 2
        if quiet:
            logging.disable(logging.WARNING)
        try:
            return super().execute(*args, **options)
        except (CommandError, SystemExit, KeyboardInterrupt):
            raise
        except Exception as exc:
            if options.get("traceback"):
                raise
            raise CommandError(error_text(exc)) from None
        finally:
            if quiet:
                logging.disable(logging.NOTSET)


def error_text(exc: Exception) -> str:
    """One line for the administrator: field errors name the field (as its flag does)."""
    if isinstance(exc, ServiceError):
        if exc.fields:
            return "Invalid: " + "; ".join(f"{k}: {v}" for k, v in exc.fields.items())
        return exc.message
    if isinstance(exc, ValidationError):
        if hasattr(exc, "error_dict"):
            fields = exc.message_dict.items()
            return "Invalid: " + "; ".join(f"{k}: {' '.join(v)}" for k, v in fields)
        return "Invalid: " + " ".join(exc.messages)
    if isinstance(exc, VaultError):
        return str(exc)
    first_line = (str(exc).strip().splitlines() or [""])[0]
    return redact(f"Unexpected error ({type(exc).__name__}): {first_line}".rstrip(": "))


# --- secrets ---------------------------------------------------------------------------------


def add_secret_arguments(parser: ArgumentParser, name: str, help_name: str) -> None:
    """--NAME-file PATH | --NAME-stdin: a secret never travels in argv (ps, shell history)."""
    group = parser.add_mutually_exclusive_group()
    group.add_argument(
        f"--{name}-file",
        metavar="PATH",
        help=f"read the {help_name} from PATH ('-' for stdin)",
    )
    group.add_argument(
        f"--{name}-stdin", action="store_true", help=f"read the {help_name} from stdin"
    )


def read_secret(*, path: str | None, from_stdin: bool, what: str) -> str | None:
    """The secret from `path` or stdin, without its line ending; None when neither is given."""
    if from_stdin or path == "-":
        text, source = sys.stdin.read(), "stdin"
    elif path is not None:
        try:
            text, source = Path(path).read_text(), path
        except (OSError, UnicodeDecodeError) as exc:
            reason = getattr(exc, "strerror", None) or "not a text file"
            raise CommandError(f"Cannot read the {what} from {path}: {reason}.") from None
    else:
        return None
    value = text.rstrip("\r\n")
    if not value:
        raise CommandError(f"The {what} from {source} is empty.")
    if "\n" in value or "\r" in value:
        raise CommandError(f"The {what} from {source} has more than one line.")
    return value


# --- output ----------------------------------------------------------------------------------


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON")


def json_text(data: Any) -> str:
    return json.dumps(data, indent=2, default=_jsonable)


def human(value: Any) -> str:
    if value is None or value == "":
        return "-"
    if isinstance(value, str) and not value.strip():
        return repr(value)  # a separator that is a space, say
    if isinstance(value, datetime):
        return f"{value:%Y-%m-%d %H:%M:%S %Z}"
    if isinstance(value, dict):
        return json.dumps(value)
    return str(value)


def confirm(question: str, *, yes: bool) -> None:
    """Go on when --yes was given or a person at a terminal answers y; stop otherwise."""
    if yes:
        return
    if not sys.stdin.isatty():
        raise CommandError(f"{question} Add --yes to confirm (stdin is not a terminal).")
    sys.stderr.write(f"{question} [y/N] ")
    sys.stderr.flush()
    if sys.stdin.readline().strip().lower() not in ("y", "yes"):
        raise CommandError("Nothing was deleted.")


def flag_of(field: str) -> str:
    """A field's flag: client_id -> --client-id (the API's JSON names, dashed)."""
    return "--" + field.replace("_", "-")


def help_of(model: type[models.Model], field: str) -> str:
    """A field's help text, as argparse takes it."""
    return str(getattr(model._meta.get_field(field), "help_text", "") or "").replace("%", "%%")


def add_bool_argument(parser: ArgumentParser, flag: str, help: str) -> None:
    """--FLAG / --no-FLAG; absent: unchanged (None)."""
    parser.add_argument(f"--{flag}", action=BooleanOptionalAction, default=None, help=help)


def seconds(text: str) -> int:
    """An argparse type: whole seconds, 0 to a day (as the API's min_valid_seconds)."""
    try:
        value = int(text)
    except ValueError:
        raise ArgumentTypeError(f"not a whole number of seconds: {text!r}") from None
    if not 0 <= value <= 86400:
        raise ArgumentTypeError(f"must be between 0 and 86400 seconds, not {value}")
    return value
