"""Keep secrets out of logs, error pages and messages.

Two nets: every value the vault encrypts or decrypts in this process is remembered (a bounded
set) and masked wherever it appears; and well-known credential shapes (``access_token=...``,
``"refresh_token": "..."``, ``Bearer ...``) are masked whatever their value.
"""

import logging
import pprint
import re
import threading
import traceback
from collections import OrderedDict
from typing import Any

MASK = "***"
_MIN_SECRET_LENGTH = 6
_MAX_REMEMBERED = 1024

_lock = threading.Lock()
_known: OrderedDict[str, None] = OrderedDict()

_SECRET_NAMES = (
    r"access_token|refresh_token|id_token|client_secret|code_verifier|password|passwd|"
    r"secret|code|assertion|token"
)
_PATTERNS = [
    (re.compile(rf"(?i)\b({_SECRET_NAMES})=([^&\s\"'<>]+)"), rf"\1={MASK}"),
    (re.compile(rf"(?i)([\"']({_SECRET_NAMES})[\"']\s*:\s*)[\"'][^\"']*[\"']"), rf"\1'{MASK}'"),
    (re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{6,}"), rf"\1 {MASK}"),
]


def remember_secret(value: str | None) -> None:
    """Mask `value` from now on wherever this process writes text."""
    if not value or len(value) < _MIN_SECRET_LENGTH:
        return
    with _lock:
        _known[value] = None
        _known.move_to_end(value)
        while len(_known) > _MAX_REMEMBERED:
            _known.popitem(last=False)


def redact(text: str) -> str:
    if not text:
        return text
    with _lock:
        known = list(_known)
    # Longest first, so a secret that contains another is masked whole.
    for secret in sorted((s for s in known if s in text), key=len, reverse=True):
        text = text.replace(secret, MASK)
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


class RedactingLogFilter(logging.Filter):
    """Renders the record (message, arguments, traceback) and masks what it must."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = redact(record.getMessage())
        record.args = ()
        if record.exc_info:
            record.exc_text = redact("".join(traceback.format_exception(*record.exc_info)))
            record.exc_info = None
        return True


def _django_filter_base() -> Any:
    from django.views.debug import SafeExceptionReporterFilter

    return SafeExceptionReporterFilter


def _django_reporter_base() -> Any:
    from django.views.debug import ExceptionReporter

    return ExceptionReporter


def _shown(value: Any) -> str:
    """A frame variable as the error page shows it: never running a query, never failing."""
    from django.db.models.query import QuerySet

    if isinstance(value, QuerySet):
        # Its repr would run the query, inside the error page (and fail again if it caused it).
        return f"<{type(value).__name__} of {value.model.__name__}: not evaluated>"
    try:
        return redact(pprint.pformat(value))
    except Exception as exc:
        return f"<unrepresentable {type(value).__name__}: {type(exc).__name__}>"


class RedactingExceptionReporterFilter(_django_filter_base()):  # type: ignore[misc]
    """Django's DEBUG and e-mailed error reports, with known secrets masked in every value."""

    hidden_settings = re.compile(
        "API|TOKEN|KEY|SECRET|PASS|SIGNATURE|HTTP_COOKIE|VAULT|DATABASE_URL", flags=re.I
    )

    def cleanse_setting(self, key: Any, value: Any) -> Any:
        cleansed = super().cleanse_setting(key, value)
        return redact(cleansed) if isinstance(cleansed, str) else cleansed

    def get_post_parameters(self, request: Any) -> Any:
        params = super().get_post_parameters(request)
        if not params:
            return params
        params = params.copy()
        for key in list(params):
            if re.search(_SECRET_NAMES, key, flags=re.I):
                params[key] = self.cleansed_substitute
            else:
                params.setlist(key, [redact(v) for v in params.getlist(key)])
        return params

    def get_traceback_frame_variables(self, request: Any, tb_frame: Any) -> Any:
        variables = super().get_traceback_frame_variables(request, tb_frame)
        cleaned = []
        for name, value in variables:
            if re.search(_SECRET_NAMES + "|verifier|sealed|plaintext", name, flags=re.I):
                cleaned.append((name, self.cleansed_substitute))
            else:
                cleaned.append((name, _Shown(_shown(value))))
        return cleaned

    def get_safe_request_meta(self, request: Any) -> Any:
        meta = super().get_safe_request_meta(request)
        return {k: redact(v) if isinstance(v, str) else v for k, v in meta.items()}


class _Shown:
    """A value already rendered (and redacted) for the error page."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return self.text


class SuperuserExceptionReporter(_django_reporter_base()):  # type: ignore[misc]
    """With DEBUG on, Django's technical 500 page (code, locals, settings, the request) for a
    signed-in superuser only; everyone else gets the plain 500 page, as with DEBUG off."""

    def _for_superuser(self) -> bool:
        try:
            user = getattr(self.request, "user", None)
            return bool(user is not None and user.is_active and user.is_superuser)
        except Exception:  # the session or user lookup may be what failed
            return False

    def get_traceback_html(self) -> str:
        if self._for_superuser():
            return str(super().get_traceback_html())
        from django.urls import get_resolver

        response = get_resolver().resolve_error_handler(500)(self.request)
        return bytes(response.content).decode(response.charset)

    def get_traceback_text(self) -> str:
        if self._for_superuser():
            return str(super().get_traceback_text())
        return "Server Error (500)"
