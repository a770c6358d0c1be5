"""Files written whole or not at all: a temporary file beside the target, flushed, then renamed into place.

Every file the package writes (results, checkpoints' metadata, figures, the data cache) goes through
``write_atomically``, so a kill at any moment leaves the previous file or the new one, never half of one.
The temporary file is ``.<name>.<pid>.<random>.part``: a later run can tell that its writer is gone.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

__all__ = ["umask", "write_atomically", "write_json", "write_text"]


def umask() -> int:
    """The process's umask (read without changing it for longer than a call)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_atomically(path: Path, write: Callable[[BinaryIO], None]) -> Path:
    """Call ``write`` on a temporary file beside ``path``, flush it to disk, rename it to ``path``; return it.

    On any failure, a kill included, ``path`` is left as it was."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.", suffix=".part", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~umask())  # mkstemp makes 0600; these files are read like any other
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_text(path: Path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    return write_atomically(path, lambda f: f.write(text.encode()))


def write_json(path: Path, payload: dict) -> Path:
    """Write ``payload`` as indented JSON atomically; NaN and infinity are refused."""
    return write_text(path, json.dumps(payload, indent=2, allow_nan=False) + "\n")
