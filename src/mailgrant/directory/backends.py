"""Signing in on the login page with a directory password ("show in login" directories)."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.backends import BaseBackend
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest

from mailgrant.directory.errors import DirectoryUserDisabled
from mailgrant.directory.models import LdapDirectory
from mailgrant.directory.services.login import directory_password_login


class DirectoryBackend(BaseBackend):
    """Checks the password by binding to the directory as the person; listed after
    ModelBackend, which turns directory users away (their local password is unusable).

    A disabled person with the right password raises PermissionDenied, which ends the sign-in
    there (no later backend is asked)."""

    def authenticate(
        self,
        request: HttpRequest | None,
        username: str | None = None,
        password: str | None = None,
        **kwargs: Any,
    ) -> Any:
        if username is None:
            username = kwargs.get(get_user_model().USERNAME_FIELD)
        if not username or not password:
            return None
        try:
            return directory_password_login(username=username, password=password)
        except DirectoryUserDisabled:
            raise PermissionDenied from None

    def get_user(self, user_id: Any) -> Any:
        """A session made here lasts while the person is active in a directory that still
        lets its people sign in."""
        return (
            get_user_model()
            ._default_manager.filter(
                pk=user_id,
                is_active=True,
                directory_account__is_disabled=False,
                directory_account__directory__status=LdapDirectory.Status.ENABLED,
                directory_account__directory__show_in_login=True,
            )
            .first()
        )
