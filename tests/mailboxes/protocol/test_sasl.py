"""SASL encoders against known values (Google's XOAUTH2 documentation, RFC 7628's example)."""

import pytest

from mailgrant.mailboxes.protocol import sasl


def test_xoauth2_matches_googles_documented_example() -> None:
    # https://developers.google.com/gmail/imap/xoauth2-protocol: the base64 of the example.
    message = sasl.xoauth2("someuser@example.com", "ya29.vF9dft4qmTc2Nvb3RlckBhdHRhdmlzdGEuY29tCg")
    assert sasl.encode(message) == (
        "dXNlcj1zb21ldXNlckBleGFtcGxlLmNvbQFhdXRoPUJlYXJlciB5YTI5LnZGOWRmdDRxbVRjMk52YjNSbGNr"
        "QmhkSFJoZG1semRHRXVZMjl0Q2cBAQ=="
    )


def test_oauthbearer_matches_rfc_7628() -> None:
    # RFC 7628 section 4.1: the initial client response.
    message = sasl.oauthbearer(
        "user@example.com",
        "vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg==",
        host="server.example.com",
        port=143,
    )
    assert message == (
        "n,a=user@example.com,\x01host=server.example.com\x01port=143\x01"
        "auth=Bearer vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg==\x01\x01"
    )


def test_oauthbearer_escapes_the_saslname() -> None:
    assert sasl.oauthbearer("a,b=c", "t").startswith("n,a=a=2Cb=3Dc,\x01")


@pytest.mark.parametrize(
    ("user", "token"),
    [
        ("", "token"),
        ("user", ""),
        ("user\x01auth=Bearer evil", "t"),
        ("u", "tok\x01en"),
        ("u\r\nA1 LOGOUT", "t"),
    ],
)
def test_hostile_or_empty_values_are_refused(user: str, token: str) -> None:
    with pytest.raises(ValueError):
        sasl.xoauth2(user, token)
    with pytest.raises(ValueError):
        sasl.oauthbearer(user, token)


def test_error_challenges_decode() -> None:
    xoauth2_error = "eyJzdGF0dXMiOiI0MDEiLCJzY2hlbWVzIjoiYmVhcmVyIiwic2NvcGUiOiJtYWlsIn0="
    assert sasl.decode_error(xoauth2_error) == {
        "status": "401",
        "schemes": "bearer",
        "scope": "mail",
    }
    assert sasl.decode_error(b'{"status":"invalid_token"}') == {"status": "invalid_token"}
    assert sasl.decode_error("") is None
    assert sasl.decode_error("not base64 !!") is None
    assert sasl.decode_error(sasl.encode("[1, 2]")) is None


def test_unknown_mechanism() -> None:
    with pytest.raises(ValueError, match="unknown SASL mechanism"):
        sasl.initial_response("PLAIN", user="u", token="t")
