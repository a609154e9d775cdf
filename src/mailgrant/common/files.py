"""Small file helpers that must not import Django (settings use them)."""

import os
import tempfile
from pathlib import Path


def write_private_file(path: Path, text: str) -> None:
    """Create `path` readable by its owner only (0600), atomically: never a half-written key.
    The temporary file is new (O_EXCL, a random name, O_NOFOLLOW: mkstemp), so a file or
    symlink planted beside `path` is never written through."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        try:
            os.write(fd, text.encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
