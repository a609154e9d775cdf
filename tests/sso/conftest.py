from typing import Any

import pytest

from mailgrant.sso.directory_services import ldap_directory_save
from mailgrant.sso.models import LdapDirectory
from tests.servers import slapd as peer


@pytest.fixture
def make_directory(directory_people: Any, db: Any) -> Any:
    """A directory on the test slapd (plain LDAP, bound as mailgrant's reader), saved through
    the service; fields override."""

    def make(*, bind_password: str | None = peer.BIND_PASSWORD, **fields: Any) -> LdapDirectory:
        fields.setdefault("name", f"directory-{LdapDirectory.objects.count() + 1}")
        fields.setdefault("server_uri", directory_people.uri)
        fields.setdefault("security", "none")
        fields.setdefault("bind_dn", peer.BIND_DN)
        fields.setdefault("base_dn", peer.PEOPLE_DN)
        fields.setdefault("user_filter", peer.USER_FILTER)
        fields.setdefault("disabled_filter", peer.DISABLED_FILTER)
        return ldap_directory_save(directory=LdapDirectory(**fields), bind_password=bind_password)

    return make
