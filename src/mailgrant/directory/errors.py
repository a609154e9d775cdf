"""What can go wrong with an LDAP directory beyond the common errors."""

from __future__ import annotations

from mailgrant.common.errors import Refused


class DirectoryUserDisabled(Refused):
    """The directory says this person is disabled: the login is refused. The message is the
    sentence shown to the person; `directory` and `username` are for logs."""

    code = "directory_user_disabled"

    def __init__(self, *, directory: str, username: str) -> None:
        super().__init__(
            "Your account is disabled in the company directory, so you cannot sign in. "
            "Ask your administrator."
        )
        self.directory = directory
        self.username = username
