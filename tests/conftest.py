from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from mailgrant.common.crypto import reset_vault
from mailgrant.oauth.client import TokenSet
from mailgrant.oauth.models import Grant, OAuthClient
from mailgrant.oauth.services import oauth_client_save
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
        client = OAuthClient(**fields)
        return oauth_client_save(client=client, client_secret=client_secret)

    return make


@pytest.fixture
def make_grant(db: Any) -> Any:
    """A grant holding a token set as if Validate had run (for tests against fakes)."""

    def make(client: OAuthClient, *, access_token: str = "at-initial", refresh_token: str | None =
             "rt-initial", expires_in: float = 3600, lifetime: float = 3600,
             account: str = "alice@example.test") -> Grant:
        expires_at = time.time() + expires_in
        tokens = TokenSet(access_token=access_token, refresh_token=refresh_token,
                          expires_at=expires_at, obtained_at=expires_at - lifetime,
                          scope="openid email")
        from datetime import UTC, datetime

        return Grant.objects.create(
            client=client, is_default=True, account=account, state=Grant.State.AUTHORIZED,
            token_set=tokens.to_dict(), original_token_set=tokens.to_dict(),
            expires_at=datetime.fromtimestamp(tokens.expires_at, tz=UTC),
        )

    return make
