"""The API as a client of it sees it: JSON over the Django test client, one API key."""

from __future__ import annotations

from typing import Any

from django.test import Client


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
