"""SMTP submission with the standard library's smtplib: log in (password, XOAUTH2,
OAUTHBEARER) and send raw RFC 822 bytes, reporting what the server answered."""

from __future__ import annotations

import base64
import binascii
import contextlib
import smtplib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from mailgrant.mailboxes.protocol import sasl
from mailgrant.mailboxes.protocol.transport import (
    NONE,
    SSL,
    STARTTLS,
    AuthRefused,
    Endpoint,
    Login,
    MailClient,
    MailError,
    PasswordLogin,
    Transcript,
    connect_error,
    sasl_message,
)


@dataclass(frozen=True)
class SendResult:
    accepted: list[str]
    refused: dict[str, str]
    reply: str  # the server's answer to the message, e.g. "250 2.0.0 Ok: queued as ..."


class _Recording:
    transcript: Transcript | None = None
    docmd: Callable[..., tuple[int, bytes]]  # smtplib's
    _auth_challenge_count: int

    def send(self, s: Any) -> None:
        if self.transcript is not None:
            text = s.decode("utf-8", "replace") if isinstance(s, bytes) else s
            # Message content is not transcript material: show its size only.
            first = text.split("\r\n", 1)[0]
            self.transcript.client(first if len(text) < 1000 else f"<{len(text)} bytes>")
        super().send(s)  # type: ignore[misc]

    def getreply(self) -> tuple[int, bytes]:
        code, message = super().getreply()  # type: ignore[misc]
        if self.transcript is not None:
            for line in message.decode("utf-8", "replace").splitlines() or [""]:
                self.transcript.server(f"{code} {line}")
        return code, message

    def auth(
        self,
        mechanism: str,
        authobject: Callable[..., str],
        *,
        initial_response_ok: bool = True,
    ) -> tuple[int, bytes]:
        """smtplib's exchange, in UTF-8 as SASL has it (smtplib's ASCII fails on any other
        password), with the lines that carry credentials masked in the transcript."""
        mechanism = mechanism.upper()
        initial = authobject() if initial_response_ok else None
        masked = self.transcript.credentials if self.transcript is not None else _unmasked
        with masked((lambda _: f"AUTH {mechanism} ***") if initial is not None else None):
            if initial is not None:
                code, resp = self.docmd("AUTH", f"{mechanism} {_base64(initial)}")
            else:
                code, resp = self.docmd("AUTH", mechanism)
            self._auth_challenge_count = 1 if initial is not None else 0
            while code == 334:
                self._auth_challenge_count += 1
                if self._auth_challenge_count > 5:
                    raise smtplib.SMTPException("The server keeps sending AUTH challenges.")
                try:
                    challenge = base64.b64decode(resp, validate=True)
                except (binascii.Error, ValueError):
                    raise smtplib.SMTPException(
                        f"Malformed AUTH challenge: {resp[:80]!r}"
                    ) from None
                code, resp = self.docmd(_base64(authobject(challenge)))
        if code in (235, 503):
            return code, resp
        raise smtplib.SMTPAuthenticationError(code, resp)


@contextlib.contextmanager
def _unmasked(_: object) -> Any:
    yield


def _base64(text: str) -> str:
    return base64.b64encode(text.encode()).decode("ascii")


class _SMTP(_Recording, smtplib.SMTP):
    pass


class _SMTP_SSL(_Recording, smtplib.SMTP_SSL):
    pass


class SmtpClient(MailClient):
    def __init__(
        self,
        endpoint: Endpoint,
        login: Login,
        *,
        transcript: Transcript | None = None,
        local_hostname: str | None = None,
    ) -> None:
        self.local_hostname = local_hostname
        super().__init__(endpoint, login, transcript=transcript)

    def _connect(self) -> None:
        local_hostname = self.local_hostname
        e = self.endpoint
        try:
            if e.security == SSL:
                smtp: smtplib.SMTP = _SMTP_SSL(
                    local_hostname=local_hostname, timeout=e.timeout, context=e.ssl_context()
                )
            else:
                smtp = _SMTP(local_hostname=local_hostname, timeout=e.timeout)
            smtp.transcript = self.transcript  # type: ignore[attr-defined]
            smtp._host = e.host  # type: ignore[attr-defined]  # TLS server name (SNI, checks)
            code, banner = smtp.connect(e.host, e.port)
            if code != 220:
                raise MailError(
                    "protocol",
                    f"{e.host}:{e.port} greeted with {code} {banner.decode('utf-8', 'replace')}",
                )
            smtp.ehlo()
            if e.security == STARTTLS:
                smtp.starttls(context=e.ssl_context())
                smtp.ehlo()
            elif e.security not in (SSL, NONE):
                raise MailError("protocol", f"Unknown security {e.security!r}.")
        except MailError:
            raise
        except smtplib.SMTPNotSupportedError:
            raise MailError("tls", f"{e.host}:{e.port} does not offer STARTTLS.") from None
        except smtplib.SMTPServerDisconnected as exc:
            raise MailError(
                "connect",
                f"{e.host}:{e.port} closed the connection ({exc}). "
                "TLS to a plaintext port, or the reverse?",
                transient=True,
            ) from None
        except smtplib.SMTPException as exc:
            raise MailError("protocol", f"{e.host}:{e.port}: {exc}") from None
        except (OSError, EOFError) as exc:
            raise connect_error(exc, e) from None
        self.smtp = smtp

    @property
    def capabilities(self) -> tuple[str, ...]:
        return tuple(f"{k.upper()} {v}".strip() for k, v in self.smtp.esmtp_features.items())

    def _login(self, login: Login) -> None:
        if isinstance(login, PasswordLogin):
            if self.transcript is not None:
                self.transcript.hide(login.password)
            try:
                self.smtp.login(login.username, login.password)
            except smtplib.SMTPAuthenticationError as exc:
                raise AuthRefused(
                    f"The server refused the password login: {_reply(exc)}",
                    temporary=exc.smtp_code == 454,
                ) from None
            except smtplib.SMTPException as exc:
                raise MailError("auth", f"Password login failed: {exc}") from None
            except UnicodeEncodeError:  # CRAM-MD5 (smtplib's) takes ASCII passwords only
                raise MailError(
                    "auth", "The server offers only CRAM-MD5, which takes ASCII passwords only."
                ) from None
            return
        mechanism = login.mechanism.upper()
        token = login.get_token()
        message = sasl_message(login, self.endpoint, token)
        if self.transcript is not None:
            self.transcript.hide(token, sasl.encode(message))
        challenges: list[bytes] = []

        def respond(challenge: bytes | None = None) -> str:
            if challenge:  # the error challenge: answered with an empty line
                challenges.append(challenge)
                return ""
            return message

        try:
            # Never on the AUTH line itself: long tokens (Microsoft's JWTs) overflow it.
            self.smtp.auth(mechanism, respond, initial_response_ok=False)
        except smtplib.SMTPAuthenticationError as exc:
            details = next((sasl.decode_error(c) for c in challenges), None)
            raise AuthRefused(
                f"The server refused the {mechanism} token: {_reply(exc)}",
                details=details,
                temporary=exc.smtp_code == 454,
            ) from None
        except smtplib.SMTPException as exc:
            raise MailError("auth", f"{mechanism} login failed: {exc}") from None

    def send(self, sender: str, recipients: Sequence[str], raw: bytes) -> SendResult:
        try:
            code, reply = self.smtp.mail(sender)
            if code != 250:
                raise MailError(
                    "refused",
                    f"The server refused the sender {sender}: "
                    f"{code} {reply.decode('utf-8', 'replace')}",
                )
            refused: dict[str, str] = {}
            for recipient in recipients:
                code, reply = self.smtp.rcpt(recipient)
                if code not in (250, 251):
                    refused[recipient] = f"{code} {reply.decode('utf-8', 'replace')}"
            accepted = [r for r in recipients if r not in refused]
            if not accepted:
                self.smtp.rset()
                raise MailError(
                    "refused",
                    "The server refused every recipient: "
                    + "; ".join(f"{k}: {v}" for k, v in refused.items()),
                )
            code, reply = self.smtp.data(raw)
        except smtplib.SMTPException as exc:
            raise MailError("protocol", f"Sending failed: {exc}") from None
        except OSError as exc:
            raise connect_error(exc, self.endpoint) from None
        text = f"{code} {reply.decode('utf-8', 'replace')}"
        if code != 250:
            raise MailError("refused", f"The server refused the message: {text}")
        return SendResult(accepted=accepted, refused=refused, reply=text)

    def close(self) -> None:
        try:
            self.smtp.quit()
        except (smtplib.SMTPException, OSError):
            self._abandon()

    def _abandon(self) -> None:
        with contextlib.suppress(OSError):
            self.smtp.close()


def _reply(exc: smtplib.SMTPResponseException) -> str:
    text = (
        exc.smtp_error.decode("utf-8", "replace")
        if isinstance(exc.smtp_error, bytes)
        else str(exc.smtp_error)
    )
    return f"{exc.smtp_code} {text}"
