"""Where prometheus-client's multiprocess mode keeps each process's counters: a private folder
of MAILGRANT_HOME, named in PROMETHEUS_MULTIPROC_DIR before prometheus_client is first
imported (it reads the variable at import). The WSGI/ASGI entry points and the `mailgrant`
commands that serve or work in the background (cli.COUNTED) call `metrics_dir_prepare()`
first, so every serving process and worker counts into the same folder and `/metrics` sums
them.

Each process writes its own files (`counter_<pid>.db`, `histogram_<pid>.db`); those of
processes that are gone are removed when such a process starts, so the folder holds the live
processes' and the recently ended ones', never an ever-growing pile. A counter that goes down
when an ended process's files go is a reset to Prometheus (`rate()` handles it). No gauge is
kept in these files (the gauges are read from the database at scrape time), so nothing needs
`mark_process_dead`.

No Django and no prometheus_client here: this runs before either is set up."""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import MutableMapping
from pathlib import Path

VARIABLE = "PROMETHEUS_MULTIPROC_DIR"
_PID = re.compile(r"_(\d+)\.db$")


def metrics_dir_prepare(environ: MutableMapping[str, str] | None = None) -> Path:
    """The folder (MAILGRANT_HOME/metrics unless PROMETHEUS_MULTIPROC_DIR names one), created
    0700, named in the environment, and rid of the files of processes no longer running."""
    environ = os.environ if environ is None else environ
    if not environ.get(VARIABLE):
        home = Path(environ.get("MAILGRANT_HOME", "./var")).resolve()
        environ[VARIABLE] = str(home / "metrics")
    folder = Path(environ[VARIABLE])
    with contextlib.suppress(FileExistsError):
        folder.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        folder.mkdir(mode=0o700)
    metrics_dir_sweep(folder)
    return folder


def metrics_dir_sweep(folder: Path) -> list[Path]:
    """Remove the files of processes that no longer run; the ones removed."""
    removed = []
    for path in folder.glob("*.db"):
        match = _PID.search(path.name)
        if match is None or _running(int(match.group(1))):
            continue
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
            removed.append(path)
    return removed


def _running(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: running
        return True
    return True
