"""Talking to an LDAP directory with ldap3: bind, paged search of the people, one person's
entry, a password check by binding as the person. Plain values in, dataclasses out; nothing
from Django. Every failure is an LdapError whose message names what went wrong and never
carries a password."""

from __future__ import annotations

import contextlib
import math
import re
import ssl
from collections.abc import Iterator
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from ldap3 import BASE, NONE, SUBTREE, Connection, Server, Tls
from ldap3.core import exceptions as ldap_errors
from ldap3.utils.conv import escape_filter_chars
from ldap3.utils.dn import parse_dn

PAGED_RESULTS_OID = "1.2.840.113556.1.4.319"
NO_ATTRIBUTES = ["1.1"]  # RFC 4511: entries' DNs only


class LdapError(Exception):
    """The directory could not answer. `kind` is stable: unreachable, tls, bind, base_dn,
    filter, config, search, ambiguous."""

    def __init__(self, message: str, *, kind: str) -> None:
        super().__init__(message)
        self.message = message
        self.kind = kind


@dataclass(frozen=True)
class DirectoryConfig:
    server_uri: str
    base_dn: str
    security: str = "starttls"
    verify_ssl: bool = True
    ca_certificate: str = ""
    bind_dn: str = ""
    bind_password: str = field(default="", repr=False)
    user_filter: str = "(objectClass=inetOrgPerson)"
    disabled_filter: str = ""
    timeout: float = 15.0
    page_size: int = 500


@dataclass(frozen=True)
class DirectoryEntry:
    dn: str
    attributes: dict[str, list[str]]  # keys lower-cased; values decoded as UTF-8
    disabled: bool = False

    def first(self, attribute: str) -> str:
        values = self.attributes.get(attribute.lower()) or []
        return values[0] if values else ""


# --- checks without a server ------------------------------------------------------------------


def normalize_filter(text: str) -> str:
    """A filter as typed, wrapped in parentheses when the outer pair is missing."""
    text = text.strip()
    if text and not text.startswith("("):
        text = f"({text})"
    return text


def filter_error(text: str) -> str:
    """Why `text` is not a valid LDAP filter; empty when it is."""
    from ldap3.operation.search import parse_filter

    try:
        parse_filter(
            normalize_filter(text),
            None,
            auto_escape=False,
            auto_encode=False,
            validator=None,
            check_names=False,
        )
    except ldap_errors.LDAPException:
        return f"{text!r} is not a valid LDAP filter"
    return ""


def dn_error(text: str) -> str:
    try:
        parse_dn(text)
    except ldap_errors.LDAPException:
        return f"{text!r} is not a valid DN"
    return ""


def server_uri_error(uri: str, security: str) -> str:
    try:
        parts = urlsplit(uri)
        parts.port  # noqa: B018  # raises on a bad port
    except ValueError:
        return f"{uri!r} is not a valid URI"
    if parts.scheme not in {"ldap", "ldaps"} or not parts.hostname:
        return "Use ldap://host[:port] or ldaps://host[:port]."
    if parts.path not in {"", "/"} or parts.query:
        return "Only scheme, host and port: the base DN has its own field."
    if parts.scheme == "ldaps" and security != "ldaps":
        return "An ldaps:// URI needs security LDAPS."
    if parts.scheme == "ldap" and security == "ldaps":
        return "LDAPS needs an ldaps:// URI."
    return ""


def ca_certificate_error(pem: str) -> str:
    if not pem.strip():
        return ""
    try:
        ssl.create_default_context(cadata=pem)
    except (ssl.SSLError, ValueError):
        return "Not a PEM certificate (-----BEGIN CERTIFICATE----- ...)."
    return ""


# --- connecting -------------------------------------------------------------------------------


def _server(config: DirectoryConfig) -> Server:
    error = server_uri_error(config.server_uri, config.security)
    if error:
        raise LdapError(error, kind="config")
    parts = urlsplit(config.server_uri)
    use_ssl = config.security == "ldaps"
    tls = None
    if config.security in {"starttls", "ldaps"}:
        tls = Tls(
            validate=ssl.CERT_REQUIRED if config.verify_ssl else ssl.CERT_NONE,
            ca_certs_data=config.ca_certificate.strip() or None,
        )
    return Server(
        parts.hostname,
        port=parts.port or (636 if use_ssl else 389),
        use_ssl=use_ssl,
        tls=tls,
        get_info=NONE,
        connect_timeout=config.timeout,
    )


def _where(config: DirectoryConfig) -> str:
    return config.server_uri


def _communication_error(config: DirectoryConfig, exc: Exception) -> LdapError:
    text = str(exc)
    if "CERTIFICATE_VERIFY_FAILED" in text or isinstance(exc, ldap_errors.LDAPCertificateError):
        reason = "certificate verify failed"
        if "verify failed:" in text:
            reason = text.split("verify failed:", 1)[1].split("(_ssl", 1)[0].strip(" '\",)")
        elif isinstance(exc, ldap_errors.LDAPCertificateError):
            reason = "its certificate does not name this host"
        return LdapError(
            f"TLS with {_where(config)} failed: {reason}. Give the CA certificate, or switch "
            "Verify SSL off for a test.",
            kind="tls",
        )
    if isinstance(exc, ldap_errors.LDAPStartTLSError | ssl.SSLError) or "ssl" in text.lower():
        hint = " (is it a plain LDAP port?)" if "EOF" in text else ""
        return LdapError(f"TLS with {_where(config)} failed: {_short(text)}{hint}", kind="tls")
    if isinstance(exc, ldap_errors.LDAPSocketReceiveError) or "timed out" in text:
        return LdapError(
            f"{_where(config)} did not answer within {config.timeout:g} s.", kind="unreachable"
        )
    if isinstance(exc, ldap_errors.LDAPSessionTerminatedByServerError):
        return LdapError(
            f"{_where(config)} closed the connection (plain LDAP to a TLS port, or the reverse?).",
            kind="unreachable",
        )
    reason = _short(text.split("opening:", 1)[-1])
    return LdapError(f"Cannot reach {_where(config)}: {reason}", kind="unreachable")


def _short(text: str) -> str:
    text = re.sub(r"\s*\(_ssl\.c:\d+\)?", "", text)
    return text.strip(" '\"(),").replace("\\'", "'")[:200]


def _bind(config: DirectoryConfig, *, user: str, password: str) -> Connection:
    """An open connection (TLS as configured) bound as `user`; anonymous when both are empty."""
    if user and not password:
        raise LdapError("The bind DN needs its password.", kind="config")
    conn = Connection(
        _server(config),
        user=user or None,
        password=password or None,
        # whole seconds: ldap3 packs it into SO_RCVTIMEO as an integer
        receive_timeout=max(1, math.ceil(config.timeout)),
        read_only=True,
        raise_exceptions=False,
        auto_referrals=False,
    )
    try:
        conn.open()
        if config.security == "starttls":
            conn.start_tls()
        bound = conn.bind()
    except ldap_errors.LDAPException as exc:
        _unbind(conn)
        raise _communication_error(config, exc) from None
    except (OSError, ssl.SSLError) as exc:
        _unbind(conn)
        raise _communication_error(config, exc) from None
    if not bound:
        result = conn.result or {}
        _unbind(conn)
        description = result.get("description", "refused")
        if description == "invalidCredentials":
            raise LdapError(
                f"{_where(config)} refused the bind DN or password (invalidCredentials).",
                kind="bind",
            )
        if description == "invalidDNSyntax":
            raise LdapError(f"The bind DN {user!r} is not a valid DN.", kind="bind")
        raise LdapError(
            f"{_where(config)} refused the bind: {description} {result.get('message', '')}".strip(),
            kind="bind",
        )
    return conn


def _unbind(conn: Connection) -> None:
    with contextlib.suppress(ldap_errors.LDAPException, OSError):
        conn.unbind()


def _service_bind(config: DirectoryConfig) -> Connection:
    return _bind(config, user=config.bind_dn, password=config.bind_password)


# --- searching --------------------------------------------------------------------------------


def _search_failed(config: DirectoryConfig, result: dict[str, object], base: str) -> LdapError:
    description = str(result.get("description", "error"))
    if description == "noSuchObject":
        hint = "" if config.bind_dn else " (or an anonymous bind may not see it: give a bind DN)"
        return LdapError(
            f"The base DN {base!r} does not exist on the server{hint}.", kind="base_dn"
        )
    if description == "invalidDNSyntax":
        return LdapError(f"The base DN {base!r} is not a valid DN.", kind="base_dn")
    if description in {"sizeLimitExceeded", "timeLimitExceeded", "adminLimitExceeded"}:
        # Half a list must never pass for the whole one: a sync would disable the rest.
        return LdapError(
            f"{_where(config)} stopped the search of {base!r} at a limit ({description}): let "
            'the bind DN read every person (OpenLDAP: limits dn.exact="<bind DN>" '
            "size=unlimited), or narrow the user filter.",
            kind="search",
        )
    if description in {"insufficientAccessRights", "inappropriateAuthentication"}:
        return LdapError(f"The bind DN may not read {base!r} ({description}).", kind="search")
    message = str(result.get("message", "")).strip()
    return LdapError(
        f"The search of {base!r} failed: {description}{': ' + message if message else ''}",
        kind="search",
    )


def _paged(
    conn: Connection,
    config: DirectoryConfig,
    *,
    base: str,
    search_filter: str,
    attributes: list[str],
    scope: str = SUBTREE,
) -> Iterator[tuple[str, dict[str, list[str]]]]:
    cookie: bytes | None = None
    while True:
        try:
            conn.search(
                base,
                search_filter,
                search_scope=scope,
                attributes=attributes,
                paged_size=config.page_size if scope == SUBTREE else None,
                paged_cookie=cookie,
                time_limit=max(1, math.ceil(config.timeout)),
            )
        except ldap_errors.LDAPInvalidFilterError:
            raise LdapError(
                f"{search_filter!r} is not a valid LDAP filter.", kind="filter"
            ) from None
        except ldap_errors.LDAPInvalidDnError:
            raise LdapError(f"The base DN {base!r} is not a valid DN.", kind="base_dn") from None
        except ldap_errors.LDAPException as exc:
            raise _communication_error(config, exc) from None
        except OSError as exc:
            raise _communication_error(config, exc) from None
        result = conn.result or {}
        # Only "success" is the whole answer: ldap3 also returns True for sizeLimitExceeded,
        # with the entries up to the limit.
        if result.get("description") != "success":
            if scope == BASE and result.get("description") == "noSuchObject":
                return
            raise _search_failed(config, result, base)
        for item in conn.response or []:
            if item.get("type") == "searchResEntry":
                yield item["dn"], _decoded(item.get("raw_attributes") or {})
        controls = result.get("controls") or {}
        cookie = (controls.get(PAGED_RESULTS_OID) or {}).get("value", {}).get("cookie")
        if not cookie:
            return


def _decoded(raw: dict[str, list[bytes]]) -> dict[str, list[str]]:
    return {
        name.lower(): [v.decode("utf-8", "replace") for v in values if v is not None]
        for name, values in raw.items()
    }


def _people_filter(config: DirectoryConfig, extra: str = "") -> str:
    user_filter = normalize_filter(config.user_filter) or "(objectClass=*)"
    return f"(&{user_filter}{extra})" if extra else user_filter


def search_people(config: DirectoryConfig, *, attributes: list[str]) -> list[DirectoryEntry]:
    """Every entry under base_dn that user_filter selects, with `attributes`, and whether
    disabled_filter matches it."""
    conn = _service_bind(config)
    try:
        found = list(
            _paged(
                conn,
                config,
                base=config.base_dn,
                search_filter=_people_filter(config),
                attributes=attributes,
            )
        )
        disabled: set[str] = set()
        if config.disabled_filter.strip():
            disabled_filter = _people_filter(config, normalize_filter(config.disabled_filter))
            disabled = {
                dn.lower()
                for dn, _ in _paged(
                    conn,
                    config,
                    base=config.base_dn,
                    search_filter=disabled_filter,
                    attributes=NO_ATTRIBUTES,
                )
            }
    finally:
        _unbind(conn)
    return [DirectoryEntry(dn, attrs, dn.lower() in disabled) for dn, attrs in found]


def count_people(config: DirectoryConfig) -> tuple[int, int]:
    """(people, disabled people): what a sync would import, without reading their entries."""
    conn = _service_bind(config)
    try:
        people = sum(
            1
            for _ in _paged(
                conn,
                config,
                base=config.base_dn,
                search_filter=_people_filter(config),
                attributes=NO_ATTRIBUTES,
            )
        )
        disabled = 0
        if config.disabled_filter.strip():
            disabled = sum(
                1
                for _ in _paged(
                    conn,
                    config,
                    base=config.base_dn,
                    search_filter=_people_filter(config, normalize_filter(config.disabled_filter)),
                    attributes=NO_ATTRIBUTES,
                )
            )
    finally:
        _unbind(conn)
    return people, disabled


def find_person(
    config: DirectoryConfig, *, attribute: str, value: str, attributes: list[str]
) -> DirectoryEntry | None:
    """The one person whose `attribute` equals `value`; None when no one has it. Two or more
    is an LdapError (kind "ambiguous"): a login must never pick one of them at random."""
    if not value:
        return None
    search_filter = _people_filter(config, f"({attribute}={escape_filter_chars(value)})")
    conn = _service_bind(config)
    try:
        found = list(
            _paged(
                conn,
                config,
                base=config.base_dn,
                search_filter=search_filter,
                attributes=attributes,
            )
        )
        if len(found) > 1:
            raise LdapError(
                f"{len(found)} entries have {attribute}={value}; none is used.", kind="ambiguous"
            )
        if not found:
            return None
        dn, attrs = found[0]
        disabled = False
        if config.disabled_filter.strip():
            disabled = any(
                _paged(
                    conn,
                    config,
                    base=dn,
                    search_filter=normalize_filter(config.disabled_filter),
                    attributes=NO_ATTRIBUTES,
                    scope=BASE,
                )
            )
    finally:
        _unbind(conn)
    return DirectoryEntry(dn, attrs, disabled)


def check_password(config: DirectoryConfig, *, dn: str, password: str) -> bool:
    """Whether `password` is the password of the entry `dn`, by binding as it. An empty password
    is refused here: LDAP takes a DN with an empty password as an anonymous bind (RFC 4513
    5.1.2), which "succeeds" for anyone."""
    if not password or not dn:
        return False
    try:
        conn = _bind(config, user=dn, password=password)
    except LdapError as exc:
        if exc.kind == "bind":
            return False
        raise
    _unbind(conn)
    return True
