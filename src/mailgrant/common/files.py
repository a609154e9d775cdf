"""Small file helpers that must not import Django (settings use them)."""

import os
from pathlib import Path


def write_private_file(path: Path, text: str) -> None:
    """Create `path` readable by its owner only (0600), atomically: never a half-written key."""
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, text.encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
