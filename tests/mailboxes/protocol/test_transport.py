"""A token no SASL message can carry (a control character in it, from a hostile or broken
token endpoint) is the mailbox's login error, and the error does not repeat the token."""

from __future__ import annotations

import pytest

from mailgrant.mailboxes.protocol import sasl
from mailgrant.mailboxes.protocol.transport import Endpoint, MailError, TokenLogin, sasl_message

CANARY = "tok-canary-9f2e"


@pytest.mark.parametrize("mechanism", [sasl.XOAUTH2, sasl.OAUTHBEARER])
@pytest.mark.parametrize("token", [f"{CANARY}\x01auth=x", f"{CANARY}\r\nA1 LOGOUT", ""])
def test_a_token_sasl_cannot_carry_is_a_login_error(mechanism: str, token: str) -> None:
    login = TokenLogin(username="alice@example.test", mechanism=mechanism, get_token=lambda: token)
    with pytest.raises(MailError) as caught:
        sasl_message(login, Endpoint(host="imap.example.test", port=993), token)
    assert caught.value.kind == "auth"
    assert CANARY not in caught.value.message
