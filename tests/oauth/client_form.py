"""The admin's OAuth client form as a browser posts it: every field of the seed's page."""

from __future__ import annotations

from typing import Any

SECRET = "canary-admin-secret-7c1e"


def client_form(**overrides: Any) -> dict[str, Any]:
    data = {
        "name": "Support mailbox",
        "provider": "google",
        "type": "mailbox",
        "status": "enabled",
        "client_id": "1234.apps.googleusercontent.com",
        "client_secret": SECRET,
        "tenant": "",
        "issuer": "",
        "scope": "",
        "scope_separator": " ",
        "authorize_url": "",
        "token_url": "",
        "proxy": "",
        "verify_ssl": "on",
        "userinfo_endpoint": "",
        "user_data_source": "id_token",
        "username_attribute": "",
        "user_fields": "{}",
        "user_create_expression": "",
        "login_button_caption": "",
        "login_button_icon": "",
        "grants-TOTAL_FORMS": "0",
        "grants-INITIAL_FORMS": "0",
    }
    data.update(overrides)
    return {k: v for k, v in data.items() if v is not None}
