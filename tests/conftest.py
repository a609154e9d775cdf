from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mailgrant.api.services import apikey_create
from mailgrant.common.crypto import reset_vault
from mailgrant.directory.models import LdapDirectory
from mailgrant.directory.services.directories import ldap_directory_save
from mailgrant.oauth.models import Grant, OAuthClient
from mailgrant.oauth.protocol import TokenSet
from mailgrant.sso.services.clients import client_create
from tests.api_client import Api
from tests.servers import slapd as slapd_peer
from tests.servers.fakes import FakeProvider


@pytest.fixture(autouse=True)
def _fresh_vault() -> Iterator[None]:
    reset_vault()
    yield
    reset_vault()


@pytest.fixture
def fake_provider() -> Iterator[FakeProvider]:
    with FakeProvider() as fake:
        yield fake


@pytest.fixture
def make_client(db: Any) -> Any:
    def make(*, client_secret: str = "s3cret-client-value", **fields: Any) -> OAuthClient:
        fields.setdefault("name", f"client-{OAuthClient.objects.count() + 1}")
        fields.setdefault("provider", "generic")
        fields.setdefault("client_id", "mailgrant-test")
        if fields["provider"] == "generic" and not fields.get("issuer"):
            fields.setdefault("authorize_url", "https://provider.invalid/authorize")
            fields.setdefault("token_url", "https://provider.invalid/token")
        return client_create(values=fields, client_secret=client_secret)

    return make


@pytest.fixture
def make_grant(db: Any) -> Any:
    """A grant holding a token set as if Validate had run (for tests against fakes)."""

    def make(
        client: OAuthClient,
        *,
        access_token: str = "at-initial",
        refresh_token: str | None = "rt-initial",
        expires_in: float = 3600,
        lifetime: float = 3600,
        account: str = "alice@example.test",
    ) -> Grant:
        expires_at = time.time() + expires_in
        tokens = TokenSet(
            access_token=access_token,
            refresh_token=refresh_token,
            expires_at=expires_at,
            obtained_at=expires_at - lifetime,
            scope="openid email",
        )
        from datetime import UTC, datetime

        return Grant.objects.create(
            client=client,
            is_default=True,
            account=account,
            state=Grant.State.AUTHORIZED,
            token_set=tokens.to_dict(),
            original_token_set=tokens.to_dict(),
            expires_at=datetime.fromtimestamp(tokens.expires_at, tz=UTC),
        )

    return make


# --- the API, as a client of it sees it ----------------------------------------------------


@pytest.fixture
def api_as(db: Any) -> Any:
    made: dict[tuple[str, ...], str] = {}

    def make(*scopes: str) -> Api:
        if scopes not in made:
            _, made[scopes] = apikey_create(
                name=f"key-{'-'.join(scopes) or 'none'}-{len(made)}", scopes=scopes
            )
        return Api(made[scopes])

    return make


@pytest.fixture
def api(api_as: Any) -> Api:
    return api_as("read", "write", "tokens")


# --- the real OpenID provider (npm oidc-provider) -------------------------------------------


@pytest.fixture(scope="session")
def oidc() -> Iterator[Any]:
    from tests.peers import require
    from tests.servers.oidc import OidcServer, oidc_available

    available, reason = oidc_available()
    require(available, reason)
    with OidcServer() as server:
        yield server


@pytest.fixture
def oidc_client(oidc: Any, make_client: Any, settings: Any) -> Any:
    """A generic client at the test provider, discovered from its issuer and registered there
    with this client's redirect URI (registered again if the base URL changes)."""
    import uuid

    from mailgrant.oauth.selectors import oauth_client_redirect_uri

    def make(**fields: Any) -> OAuthClient:
        fields.setdefault("client_id", f"mg-{uuid.uuid4().hex[:12]}")
        fields.setdefault("client_secret", f"secret-{uuid.uuid4().hex}")
        fields.setdefault("scope", "openid email offline_access mail")
        client = make_client(issuer=oidc.issuer, **fields)
        oidc.register_client(
            client_id=client.client_id,
            client_secret=fields["client_secret"],
            redirect_uris=[oauth_client_redirect_uri(client=client)],
        )
        return client

    return make


@pytest.fixture
def validate_headless(oidc: Any) -> Any:
    """Validate `client` as `login` through the provider's real login and consent pages."""
    from urllib.parse import parse_qs, urlsplit

    from mailgrant.oauth.services.authorization import authorization_complete, authorization_start
    from tests.servers.oidc import ACCOUNTS

    def run(client: OAuthClient, login: str = "alice@example.test") -> Any:
        started = authorization_start(client=client, purpose="validate")
        redirect = oidc.login_headless(
            started.url, login=login, password=ACCOUNTS[login]["password"]
        )
        query = {
            k: v[0]
            for k, v in parse_qs(urlsplit(redirect).query).items()
            if k in {"code", "state", "iss", "error", "error_description"}
        }
        return authorization_complete(client_id=client.pk, bindings=[started.binding], **query)

    return run


# --- the database for multi-process tests: SQLite, and PostgreSQL (required in CI) ----------


def _sqlite(tmp_path: Path) -> Iterator[str]:
    yield f"sqlite:///{tmp_path / 'mp.sqlite3'}"


def _postgres(tmp_path: Path) -> Iterator[str]:
    import os
    import uuid

    from tests.peers import require

    url = os.environ.get("MAILGRANT_TEST_POSTGRES_URL", "")
    require(bool(url), "MAILGRANT_TEST_POSTGRES_URL is not set (PostgreSQL tests)")
    import psycopg

    name = f"mailgrant_mp_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield url.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with psycopg.connect(url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: Any, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database for processes started by the test (MAILGRANT_DATABASE_URL)."""
    make = _sqlite if request.param == "sqlite" else _postgres
    generator = make(tmp_path)
    yield next(generator)
    next(generator, None)


# --- the real mail server (Debian's Dovecot) ------------------------------------------------

DOVECOT_CLIENT = ("dovecot-resource-server", "dovecot-introspection-secret")


@pytest.fixture(scope="session")
def dovecot(oidc: Any) -> Iterator[Any]:
    from tests.peers import require
    from tests.servers.dovecot import DovecotServer, dovecot_available

    available, reason = dovecot_available()
    require(available, reason)
    client_id, secret = DOVECOT_CLIENT
    oidc.register_client(
        client_id=client_id, client_secret=secret, redirect_uris=["http://127.0.0.1:1/unused"]
    )
    introspection = oidc.issuer.replace("http://", f"http://{client_id}:{secret}@")
    with DovecotServer(introspection_url=f"{introspection}/token/introspection") as server:
        yield server


@pytest.fixture
def mail_grant(oidc_client: Any, validate_headless: Any) -> Any:
    """An email-box client at the test provider, validated as alice."""
    client = oidc_client(scope="openid email offline_access mail")
    return validate_headless(client).grant


# --- the real directory (Debian's slapd) ------------------------------------------------------


@pytest.fixture(scope="session")
def slapd() -> Iterator[Any]:
    from tests.peers import require
    from tests.servers.slapd import SlapdServer, slapd_available

    available, reason = slapd_available()
    require(available, reason)
    with SlapdServer() as server:
        yield server


@pytest.fixture
def directory_people(slapd: Any) -> Any:
    """The test slapd with exactly its seed people again (alice, bob, carol disabled)."""
    slapd.reset_people()
    return slapd


@pytest.fixture
def make_directory(directory_people: Any, db: Any) -> Any:
    """A directory on the test slapd (plain LDAP, bound as mailgrant's reader), saved through
    the service; fields override."""

    def make(
        *, bind_password: str | None = slapd_peer.BIND_PASSWORD, **fields: Any
    ) -> LdapDirectory:
        fields.setdefault("name", f"directory-{LdapDirectory.objects.count() + 1}")
        fields.setdefault("server_uri", directory_people.uri)
        fields.setdefault("security", "none")
        fields.setdefault("bind_dn", slapd_peer.BIND_DN)
        fields.setdefault("base_dn", slapd_peer.PEOPLE_DN)
        fields.setdefault("user_filter", slapd_peer.USER_FILTER)
        fields.setdefault("disabled_filter", slapd_peer.DISABLED_FILTER)
        return ldap_directory_save(directory=LdapDirectory(**fields), bind_password=bind_password)

    return make


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """The throwaway MAILGRANT_HOME of this run (tests/settings.py made it) goes too."""
    import shutil

    from django.conf import settings

    home = str(settings.MAILGRANT_HOME)
    if "mailgrant-test-" in home:
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture
def migrate() -> Iterator[Any]:
    """`migrate(targets)` moves the test database to those migrations and returns the apps as
    of them (for a data migration's test, with `transaction=True`); afterwards the database is
    back at the latest migrations, whatever the test did, for the tests after it."""
    from django.db import connection
    from django.db.migrations.executor import MigrationExecutor

    def to(targets: list[tuple[str, str]]) -> Any:
        executor = MigrationExecutor(connection)
        executor.migrate(targets)
        executor.loader.build_graph()
        return executor.loader.project_state(targets).apps

    yield to
    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())


@pytest.fixture
def webhook_hosts_unresolved(settings: Any) -> None:
    """For tests of the webhook surfaces, whose URLs name hosts that resolve nowhere here: with
    private addresses allowed none is resolved at save (the address rule itself is
    tests/notify/test_delivery.py's)."""
    settings.MAILGRANT_WEBHOOK_ALLOW_PRIVATE = True
