"""A throwaway Debian slapd on loopback ports: its own slapd.conf and mdb database under a temp
folder, loaded with `slapadd`, plain LDAP (StartTLS offered) and LDAPS listeners with a
certificate from a test CA made here. No Django here.

The people (ou=people,dc=example,dc=test) share their mail addresses with the test OpenID
provider's accounts, so single sign-on can link by mail. A disabled person carries
`employeeType: disabled`, which DISABLED_FILTER matches; mailgrant reads only the filter, so a
directory that marks people otherwise (Active Directory's userAccountControl bit, OpenLDAP's
ppolicy lock) is served by another filter, not by code.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from ldap3 import MODIFY_REPLACE, Connection, Server

from tests.servers.ports import free_port

SLAPD = "/usr/sbin/slapd"
SLAPADD = "/usr/sbin/slapadd"
SCHEMA_DIR = Path("/etc/ldap/schema")
MODULE_DIR = Path("/usr/lib/ldap")

SUFFIX = "dc=example,dc=test"
PEOPLE_DN = f"ou=people,{SUFFIX}"
ADMIN_DN = f"cn=admin,{SUFFIX}"
ADMIN_PASSWORD = "slapd-admin-password"
# What mailgrant binds as: it may read the people, nothing else.
BIND_DN = f"cn=mailgrant,{SUFFIX}"
BIND_PASSWORD = "canary-bind-password-5e0c41"  # must never show anywhere in mailgrant
# Another reader, under the server's global size limit: how a directory that caps what one
# search returns looks to a sync.
LIMITED_BIND_DN = f"cn=limited-reader,{SUFFIX}"
LIMITED_BIND_PASSWORD = "limited-reader-password"
SIZE_LIMIT = 12
USER_FILTER = "(objectClass=inetOrgPerson)"
DISABLED_FILTER = "(employeeType=disabled)"


@dataclass(frozen=True)
class Person:
    uid: str
    given_name: str
    surname: str
    mail: str
    password: str
    disabled: bool = False

    @property
    def dn(self) -> str:
        return f"uid={self.uid},{PEOPLE_DN}"


PEOPLE = [
    Person("alice", "Alice", "Example", "alice@example.test", "alice-directory-password"),
    Person("bob", "Bob", "Example", "bob@example.test", "bob-directory-password"),
    Person("carol", "Carol", "Example", "carol@example.test", "carol-directory-password", True),
]


def slapd_available() -> tuple[bool, str]:
    for binary in (SLAPD, SLAPADD):
        if not Path(binary).exists():
            return False, "slapd is not installed (make test installs it as root: slapd ldap-utils)"
    if not (MODULE_DIR / "back_mdb.so").exists() and not (MODULE_DIR / "back_mdb.la").exists():
        return False, f"slapd's mdb backend is missing from {MODULE_DIR}"
    return True, ""


def ssha(password: str) -> str:
    """A userPassword value as slappasswd makes it: {SSHA} of the password and a salt."""
    salt = os.urandom(8)
    digest = hashlib.sha1(password.encode() + salt, usedforsecurity=False).digest()
    return "{SSHA}" + base64.b64encode(digest + salt).decode()


def person_attributes(person: Person) -> dict[str, list[str]]:
    attributes = {
        "objectClass": ["inetOrgPerson"],
        "uid": [person.uid],
        "cn": [f"{person.given_name} {person.surname}"],
        "givenName": [person.given_name],
        "sn": [person.surname],
        "mail": [person.mail],
        "userPassword": [ssha(person.password)],
    }
    if person.disabled:
        attributes["employeeType"] = ["disabled"]
    return attributes


def _ldif(dn: str, attributes: dict[str, list[str]]) -> str:
    lines = [f"dn: {dn}"]
    lines += [f"{name}: {value}" for name, values in attributes.items() for value in values]
    return "\n".join(lines) + "\n\n"


def _wait_for_port(port: int, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"slapd does not listen on 127.0.0.1:{port}")


def _make_certificates(root: Path) -> str:
    """A test CA and a server certificate for 127.0.0.1 / localhost signed by it; returns the
    CA's PEM (what a directory's "CA certificate" field would hold)."""
    now = datetime.now(UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mailgrant test LDAP CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=2))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    (root / "server.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (root / "server.key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    ca_pem = ca.public_bytes(serialization.Encoding.PEM).decode()
    (root / "ca.crt").write_text(ca_pem)
    return ca_pem


class SlapdServer:
    def __init__(self, *, extra_people: Sequence[Person] = ()) -> None:
        """PEOPLE, plus `extra_people` in the initial load (for a benchmark's thousands)."""
        self.root = Path(tempfile.mkdtemp(prefix="mg-slapd-"))
        self.port, self.ldaps_port = free_port(), free_port()
        self.uri = f"ldap://127.0.0.1:{self.port}"
        self.ldaps_uri = f"ldaps://127.0.0.1:{self.ldaps_port}"
        self.ca_pem = _make_certificates(self.root)
        (self.root / "db").mkdir()
        self.config = self.root / "slapd.conf"
        self.config.write_text(self._config())
        (self.root / "seed.ldif").write_text(self._seed(extra_people))
        loaded = subprocess.run(
            [SLAPADD, "-q", "-f", str(self.config), "-l", str(self.root / "seed.ldif")],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
        )
        if loaded.returncode != 0:
            raise RuntimeError(f"slapadd failed: {loaded.stderr}")
        self._log = (self.root / "slapd.log").open("w")
        # -d keeps slapd in the foreground (a child this object ends); 'none' keeps it quiet.
        self.process = subprocess.Popen(
            [SLAPD, "-f", str(self.config), "-h", f"{self.uri}/ {self.ldaps_uri}/", "-d", "none"],
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        try:
            _wait_for_port(self.port)
            _wait_for_port(self.ldaps_port)
        except RuntimeError:
            self.stop()
            raise

    def _config(self) -> str:
        r = self.root
        schemas = "\n".join(
            f"include {SCHEMA_DIR / name}.schema" for name in ("core", "cosine", "inetorgperson")
        )
        return f"""{schemas}
pidfile {r}/slapd.pid
argsfile {r}/slapd.args
modulepath {MODULE_DIR}
moduleload back_mdb
TLSCACertificateFile {r}/ca.crt
TLSCertificateFile {r}/server.crt
TLSCertificateKeyFile {r}/server.key
sizelimit {SIZE_LIMIT}
database mdb
maxsize 67108864
suffix "{SUFFIX}"
rootdn "{ADMIN_DN}"
rootpw {ADMIN_PASSWORD}
directory {r}/db
index objectClass eq
index uid,mail eq
limits dn.exact="{BIND_DN}" size=unlimited
access to attrs=userPassword
  by anonymous auth
  by self read
  by * none
access to *
  by dn.exact="{BIND_DN}" read
  by dn.exact="{LIMITED_BIND_DN}" read
  by self read
  by * none
"""

    def _seed(self, extra_people: Sequence[Person]) -> str:
        entries = [
            (
                SUFFIX,
                {"objectClass": ["dcObject", "organization"], "dc": ["example"], "o": ["Example"]},
            ),
            (PEOPLE_DN, {"objectClass": ["organizationalUnit"], "ou": ["people"]}),
            (
                BIND_DN,
                {
                    "objectClass": ["organizationalRole", "simpleSecurityObject"],
                    "cn": ["mailgrant"],
                    "userPassword": [ssha(BIND_PASSWORD)],
                },
            ),
            (
                LIMITED_BIND_DN,
                {
                    "objectClass": ["organizationalRole", "simpleSecurityObject"],
                    "cn": ["limited-reader"],
                    "userPassword": [ssha(LIMITED_BIND_PASSWORD)],
                },
            ),
        ]
        entries += [(p.dn, person_attributes(p)) for p in [*PEOPLE, *extra_people]]
        return "".join(_ldif(dn, attributes) for dn, attributes in entries)

    # --- changing the people while the server runs (as the directory's administrator) --------

    def admin(self) -> Connection:
        return Connection(
            Server(self.uri, connect_timeout=5),
            ADMIN_DN,
            ADMIN_PASSWORD,
            auto_bind=True,
            receive_timeout=10,
        )

    def reset_people(self) -> None:
        """Back to PEOPLE exactly: tests that add, change or remove people start from here."""
        with self.admin() as conn:
            conn.search(PEOPLE_DN, "(objectClass=*)", search_scope="LEVEL", attributes=["1.1"])
            for entry in list(conn.response):
                conn.delete(entry["dn"])
            for person in PEOPLE:
                self._checked(conn, conn.add(person.dn, attributes=person_attributes(person)))

    def add_person(self, person: Person, **extra: list[str]) -> None:
        with self.admin() as conn:
            attributes = {**person_attributes(person), **extra}
            self._checked(conn, conn.add(person.dn, attributes=attributes))

    def modify(self, dn: str, **replace: list[str]) -> None:
        with self.admin() as conn:
            changes = {name: [(MODIFY_REPLACE, values)] for name, values in replace.items()}
            self._checked(conn, conn.modify(dn, changes))

    def delete(self, dn: str) -> None:
        with self.admin() as conn:
            self._checked(conn, conn.delete(dn))

    @staticmethod
    def _checked(conn: Connection, ok: bool) -> None:
        if not ok:
            raise RuntimeError(f"slapd refused the change: {conn.result}")

    @property
    def log(self) -> str:
        path = self.root / "slapd.log"
        return path.read_text() if path.exists() else ""

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> SlapdServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
