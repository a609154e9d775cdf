"""The composer on its own: known values in, the wire bytes out."""

import email
from email import policy

import pytest

from mailgrant.mailboxes.protocol.compose import (
    AddressInvalid,
    Attachment,
    MessageInvalid,
    check_addresses,
    compose,
    crlf,
)


def _headers(raw: bytes) -> dict[str, str]:
    head = raw.split(b"\r\n\r\n", 1)[0].decode("ascii")
    unfolded = head.replace("\r\n ", " ").replace("\r\n\t", " ")
    return dict(line.split(": ", 1) for line in unfolded.split("\r\n"))


def test_a_plain_message_in_known_bytes() -> None:
    raw = compose(sender="a@example.test", to=["b@example.test"], subject="Hi", text="one\ntwo")
    headers = _headers(raw)
    assert list(headers) == [
        "From",
        "To",
        "Subject",
        "Message-ID",
        "Date",
        "Content-Type",
        "Content-Transfer-Encoding",
        "MIME-Version",
    ]
    assert headers["From"] == "a@example.test" and headers["To"] == "b@example.test"
    assert headers["Subject"] == "Hi"
    assert headers["Message-ID"].endswith("@example.test>")
    assert raw.endswith(b"\r\n\r\none\r\ntwo\r\n")
    assert b"\n" not in raw.replace(b"\r\n", b"")


def test_non_ascii_is_encoded_and_reads_back() -> None:
    raw = compose(
        sender="Jörg <a@example.test>",
        to=["b@example.test"],
        subject="Grüße",
        attachments=[Attachment("März.pdf", b"%PDF", "application/pdf")],
    )
    assert _headers(raw)["Subject"] == "=?utf-8?q?Gr=C3=BC=C3=9Fe?="
    assert b"filename*=utf-8''M%C3%A4rz.pdf" in raw
    parsed = email.message_from_bytes(raw, policy=policy.SMTP)
    assert str(parsed["From"]) == "Jörg <a@example.test>"
    assert next(parsed.iter_attachments()).get_filename() == "März.pdf"


@pytest.mark.parametrize(
    ("parts", "field"),
    [
        ({"subject": "=?utf-8?q?Ticket_42=0D=0AReply-To:_attacker@evil.test?="}, "subject"),
        ({"subject": "=?iso-8859-1?q?a=0Ab?="}, "subject"),
        ({"subject": "=?utf-8?b?YQ1i?="}, "subject"),  # "a\rb"
        ({"subject": "=?utf-8?q?a=C2=85b?="}, "subject"),  # U+0085
        ({"subject": "=?utf-8?q?a=07b?="}, "subject"),
        ({"subject": "tab\tin it"}, "subject"),
        ({"subject": "line\u2029break"}, "subject"),
        ({"attachments": [Attachment("=?utf-8?q?a=0D=0AX-Injected:_1?=", b"")]}, "attachments"),
        ({"attachments": [Attachment("a\nb", b"")]}, "attachments"),
        ({"attachments": [Attachment("  ", b"")]}, "attachments"),
        ({"attachments": [Attachment("a", b"", "text/plain\r\nX: 1")]}, "attachments"),
        ({"attachments": [Attachment("a", b"", "text/plain; name=x")]}, "attachments"),
        ({"attachments": [Attachment("a", b"", "nosubtype")]}, "attachments"),
        ({"to": ["=?utf-8?q?B=0D=0ABcc:_e@evil.test?= <b@example.test>"]}, "to"),
        ({"cc": ["=?utf-8?q?B=00?= <b@example.test>"]}, "cc"),
        ({"sender": "=?utf-8?q?A=0AX:_1?= <a@example.test>"}, "sender"),
    ],
)
def test_a_control_character_once_decoded_is_refused_naming_the_field(parts, field) -> None:
    message = {"sender": "a@example.test", "to": ["b@example.test"], **parts}
    with pytest.raises(MessageInvalid) as refused:
        compose(**message)
    assert refused.value.field == field


@pytest.mark.parametrize(
    "address",
    [
        '"x" <a@example.test>, evil@evil.test',
        "a@example.test, evil@evil.test",
        "a@example.test; evil@evil.test",
        "group: a@example.test, evil@evil.test;",
        "group: a@example.test;",
        "<a@example.test> evil@evil.test",
        "a@example.test\u2028",
        "",
        "no at sign",
        "jörg@example.test",
        "a@exämple.test",
    ],
)
def test_an_entry_that_is_not_exactly_one_address_is_refused(address) -> None:
    with pytest.raises(AddressInvalid) as refused:
        check_addresses("to", [address])
    assert refused.value.field == "to"


@pytest.mark.parametrize(
    "address",
    [
        "a@example.test",
        "<a@example.test>",
        '"Doe, Jane" <jane@example.test>',
        "Ünï <u@example.test>",
    ],
)
def test_one_address_with_or_without_a_name_is_accepted(address) -> None:
    check_addresses("to", [address])
    raw = compose(sender="a@example.test", to=[address])
    assert email.message_from_bytes(raw, policy=policy.SMTP)["To"].addresses[0].addr_spec in address


def test_crlf_normalizes_every_line_end() -> None:
    assert crlf(b"a\nb\r\nc\rd\n\n") == b"a\r\nb\r\nc\r\nd\r\n\r\n"
