import logging

from django.test import RequestFactory

from mailgrant.common.redaction import (
    RedactingExceptionReporterFilter,
    RedactingLogFilter,
    redact,
    remember_secret,
)


def test_known_shapes_are_masked() -> None:
    text = redact(
        'code=abc123&state=x {"access_token": "tok-1", "refresh_token":"tok-2"} '
        "Authorization: Bearer eyJhbGciOi.payload.sig client_secret=shh-value"
    )
    for secret in ("abc123", "tok-1", "tok-2", "eyJhbGciOi", "shh-value"):
        assert secret not in text
    assert "state=x" in text


def test_remembered_secrets_are_masked_anywhere() -> None:
    remember_secret("canary-remembered-9f8e7d")
    assert redact("error near canary-remembered-9f8e7d!") == "error near ***!"
    remember_secret("abc")  # too short to mask safely: ignored
    assert redact("abc") == "abc"


def test_log_filter_renders_args_and_tracebacks() -> None:
    remember_secret("canary-log-5a4b3c")
    record = logging.LogRecord(
        "x", logging.ERROR, __file__, 1, "value %s", ("canary-log-5a4b3c",), None
    )
    try:
        raise ValueError("boom canary-log-5a4b3c")
    except ValueError:
        import sys

        record.exc_info = sys.exc_info()
    RedactingLogFilter().filter(record)
    assert "canary" not in record.getMessage()
    assert "canary" not in (record.exc_text or "")
    assert "boom ***" in (record.exc_text or "")


def test_error_report_filter_hides_secret_posts_and_variables() -> None:
    remember_secret("canary-post-1a2b3c")
    request = RequestFactory().post(
        "/x", {"client_secret": "anything", "note": "canary-post-1a2b3c"}
    )
    params = RedactingExceptionReporterFilter().get_post_parameters(request)
    assert params["client_secret"] != "anything"
    assert "canary" not in params["note"]


from hypothesis import given  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

SECRET_TEXT = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",)), min_size=8, max_size=60
).filter(lambda s: s.strip() == s and "*" not in s)


@given(secret=SECRET_TEXT, before=st.text(max_size=40), after=st.text(max_size=40))
def test_a_remembered_secret_never_survives_redaction(secret: str, before: str, after: str):
    remember_secret(secret)
    assert secret not in redact(f"{before}{secret}{after}")
