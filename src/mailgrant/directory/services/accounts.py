"""The users a directory imported: created and updated from its entries, disabled (never
deleted) when it no longer lists them or marks them disabled. A directory never takes over a
user it did not create: a username already taken is a conflict."""

from __future__ import annotations

from datetime import datetime

from django.contrib.auth import get_user_model

from mailgrant.directory import ldap
from mailgrant.directory.models import DirectoryAccount, LdapDirectory
from mailgrant.directory.selectors import (
    USER_FIELDS,
)


def entry_user_values(entry: ldap.DirectoryEntry, mapping: dict[str, str]) -> dict[str, str]:
    """User field -> value from the entry (a multi-valued attribute gives its first value),
    cut to the field's length; the username is left whole so that a too-long one is seen."""
    values = {}
    for user_field, attribute in mapping.items():
        value = entry.first(attribute).strip()
        if user_field != "username":
            value = value[: _max_length(user_field)]
        values[user_field] = value
    return values


def _max_length(user_field: str) -> int:
    return int(getattr(get_user_model()._meta.get_field(user_field), "max_length", None) or 150)


def username_usable(username: str) -> bool:
    return bool(username) and len(username) <= _max_length("username")


def directory_account_upsert(
    *,
    directory: LdapDirectory,
    account: DirectoryAccount | None,
    values: dict[str, str],
    dn: str,
    disabled: bool,
    now: datetime,
) -> tuple[str, DirectoryAccount | None]:
    """Create or update the user and account of one directory entry. Returns the outcome:
    created, updated, disabled (newly), unchanged or conflict (a username taken by a user that
    this directory did not create)."""
    user_model = get_user_model()
    username = values["username"]
    mapped = {f: values[f] for f in USER_FIELDS if f in values and f != "username"}
    if account is None:
        if user_model._default_manager.filter(username__iexact=username).exists():
            return "conflict", None
        user = user_model(username=username, is_active=not disabled, **mapped)
        user.set_unusable_password()
        user.save()
        account = DirectoryAccount.objects.create(
            directory=directory,
            user=user,
            username=username,
            dn=dn,
            is_disabled=disabled,
            synced_at=now,
        )
        return "created", account

    user = account.user
    changed_user = [f for f, v in mapped.items() if getattr(user, f) != v]
    for f in changed_user:
        setattr(user, f, mapped[f])
    if user.is_active == disabled:
        user.is_active = not disabled
        changed_user.append("is_active")
    if (
        user.get_username() != username
        and not user_model._default_manager.filter(username__iexact=username)
        .exclude(pk=user.pk)
        .exists()
    ):
        setattr(user, user_model.USERNAME_FIELD, username)
        changed_user.append(user_model.USERNAME_FIELD)
    if changed_user:
        user.save(update_fields=changed_user)

    newly_disabled = disabled and not account.is_disabled
    changed_account = [
        name
        for name, value in (("username", username), ("dn", dn), ("is_disabled", disabled))
        if getattr(account, name) != value
    ]
    for name in changed_account:
        setattr(account, name, {"username": username, "dn": dn, "is_disabled": disabled}[name])
    if changed_account:
        account.synced_at = now
        account.save(update_fields=[*changed_account, "synced_at"])
    if newly_disabled:
        return "disabled", account
    return ("updated" if changed_user or changed_account else "unchanged"), account


def directory_account_disable(account: DirectoryAccount, now: datetime) -> None:
    account.is_disabled = True
    account.synced_at = now
    account.save(update_fields=["is_disabled", "synced_at"])
    if account.user.is_active:
        account.user.is_active = False
        account.user.save(update_fields=["is_active"])


def directory_failure_text(exc: Exception) -> str:
    if isinstance(exc, ldap.LdapError):
        return exc.message
    return f"The bind password cannot be opened: {exc}"
