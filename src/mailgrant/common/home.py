"""MAILGRANT_HOME, the message store and the SQLite database kept private to mailgrant's user.

The database holds live admin session keys and the store holds every fetched message: any
local account that can read them can act as an administrator or read all mail. At start-up
(every process's app loading, before any database connection opens) the home and the store
are made 0700, saying so when they were open to others, and the SQLite file is created 0600
before SQLite first opens it, as SQLite gives its -wal and -shm files the main file's mode.
What cannot be tightened (another owner) is a system check warning."""

from __future__ import annotations

import contextlib
import logging
import os
import stat
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core import checks

logger = logging.getLogger(__name__)

PRIVATE_DIR = 0o700
PRIVATE_FILE = 0o600
_OTHERS = stat.S_IRWXG | stat.S_IRWXO


def private_dirs(path: str | os.PathLike[str]) -> None:
    """`path` and each missing parent created 0700 (os.makedirs gives parents the umask's
    mode, whatever mode it is asked for)."""
    path = os.fspath(path)
    parent = os.path.dirname(path)
    if parent and parent != path and not os.path.isdir(parent):
        private_dirs(parent)
    with contextlib.suppress(FileExistsError):
        os.mkdir(path, PRIVATE_DIR)


def sqlite_path() -> Path | None:
    """The default database's file when it is SQLite on a plain path."""
    database = settings.DATABASES["default"]
    name = str(database.get("NAME") or "")
    if database["ENGINE"] != "django.db.backends.sqlite3" or not name:
        return None
    if name == ":memory:" or name.startswith("file:"):
        return None
    return Path(name)


def home_secure() -> None:
    """Tighten the home, the store and the database files; warn about what was open."""
    for what, folder in _folders():
        _tighten_folder(what, folder)
    database = sqlite_path()
    if database is not None and database.parent.is_dir():
        _private_database(database)


def _folders() -> list[tuple[str, Path]]:
    return [
        ("MAILGRANT_HOME", Path(settings.MAILGRANT_HOME)),
        ("MAILGRANT_MESSAGE_STORE", Path(settings.MAILGRANT_MESSAGE_STORE)),
    ]


def _tighten_folder(what: str, folder: Path) -> None:
    try:
        mode = folder.lstat().st_mode
    except FileNotFoundError:
        return  # created private when first needed
    if not stat.S_ISDIR(mode) or not mode & _OTHERS:
        return
    try:
        folder.chmod(PRIVATE_DIR)
    except OSError as exc:
        logger.warning(
            "%s %s is accessible to other users (mode %04o) and cannot be made private: %s",
            what,
            folder,
            stat.S_IMODE(mode),
            exc.strerror,
        )
        return
    logger.warning(
        "%s %s was accessible to other users (mode %04o); made it 0700. Whatever they could "
        "read there (the database's session keys, fetched mail) may have been read.",
        what,
        folder,
        stat.S_IMODE(mode),
    )


def _private_database(path: Path) -> None:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, PRIVATE_FILE)
    except FileExistsError:
        pass
    else:
        os.close(fd)  # an empty file is an empty SQLite database
    for name in (path, path.with_name(f"{path.name}-wal"), path.with_name(f"{path.name}-shm")):
        try:
            mode = name.lstat().st_mode
            if stat.S_ISREG(mode) and mode & _OTHERS:
                name.chmod(PRIVATE_FILE)
        except FileNotFoundError:
            continue
        except OSError as exc:
            logger.warning("%s is readable by other users: %s", name, exc.strerror)


def home_check(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """`mailgrant check` (and every command's system checks): what is still open to others."""
    found: list[checks.CheckMessage] = []
    for number, (what, folder) in enumerate(_folders(), 1):
        try:
            mode = folder.stat().st_mode
        except OSError:
            continue
        if mode & _OTHERS:
            found.append(
                checks.Warning(
                    f"{what} {folder} is accessible to other users (mode "
                    f"{stat.S_IMODE(mode):04o}): they can read the database's session keys "
                    "and the fetched mail.",
                    hint=f"chmod 0700 {folder} (as its owner), or run mailgrant as its owner.",
                    id=f"mailgrant.W00{number}",
                )
            )
    return found
