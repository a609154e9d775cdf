from typing import Any

import pytest
from django.test import Client

from mailgrant.api.services import apikey_create


class Api:
    """The Django test client speaking JSON with one API key."""

    def __init__(self, key: str | None) -> None:
        self.client = Client()
        self.headers = {"Authorization": f"Bearer {key}"} if key else {}

    def __getattr__(self, method: str) -> Any:
        def call(path: str, body: Any = None, **kwargs: Any) -> Any:
            send = getattr(self.client, method)
            if body is not None:
                kwargs.update(data=body, content_type="application/json")
            return send(
                f"/api/v1{path}", headers={**self.headers, **kwargs.pop("headers", {})}, **kwargs
            )

        return call


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
