"""What can go wrong with an LDAP directory."""

from __future__ import annotations


class DirectoryError(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class DirectoryInvalid(DirectoryError):
    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))
        self.errors = errors


class DirectoryUserDisabled(Exception):
    """The directory says this person is disabled: the login is refused. str() is the sentence
    shown to the person; `directory` and `username` are for logs."""

    def __init__(self, *, directory: str, username: str) -> None:
        super().__init__(
            "Your account is disabled in the company directory, so you cannot sign in. "
            "Ask your administrator."
        )
        self.directory = directory
        self.username = username
