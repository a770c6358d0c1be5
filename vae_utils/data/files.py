"""Where dataset files live and how they get there: cache, mirror, checksums, atomic writes, downloads.

Downloads go through pooch (``Pooch.fetch``): streamed to a temporary file, checked against the expected
hash, retried after a failure and shown with a progress bar. Every file this package writes appears under
its final name only once it is complete and verified.

Introduced in ``notebooks/01_vae_mnist.ipynb``.
"""

from __future__ import annotations

import glob
import hashlib
import os
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import BinaryIO

import numpy as np
import requests

from .. import home
from ..atomic import umask, write_atomically
from ..checks import process_alive
from .base import DataError

RETRIES = 2  # a failed download is tried twice more, after 1 s and 2 s (pooch's back-off)
TIMEOUT_S = 60  # per connection attempt and between received chunks
_CHUNK = 1 << 20
_STALE_PART_S = 3600  # a temporary file untouched for an hour belongs to a download that was killed


# --- places and checksums -----------------------------------------------------------------------------------


def data_dir() -> Path:
    """The cache directory: ``$VAE_DATA_DIR`` if set, otherwise ``data/`` in the repository (``home``)."""
    return Path(os.environ.get("VAE_DATA_DIR") or home.ROOT / "data")


def _offline() -> bool:
    return os.environ.get("VAE_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}


def _digest(path: Path, algorithm: str) -> str:
    digest = hashlib.new(algorithm)
    with open(path, "rb") as f:
        while block := f.read(_CHUNK):
            digest.update(block)
    return digest.hexdigest()


def sha256sum(path: Path) -> str:
    """The sha256 of a file, read in chunks."""
    return _digest(path, "sha256")


def _read_sums(mirror: Path) -> dict[str, str]:
    sums_file = mirror / "SHA256SUMS"
    if not sums_file.is_file():
        raise DataError(
            f"mirror {mirror} has no SHA256SUMS file: expected {sums_file} listing "
            "'<sha256>  <filename>' for every file in the mirror"
        )
    sums = {}
    for number, line in enumerate(sums_file.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 2 or len(parts[0]) != 64:
            raise DataError(
                f"{sums_file}, line {number}: expected '<64 hex digits>  <filename>', found {line!r}"
            )
        sums[parts[1].lstrip("*")] = parts[0].lower()
    return sums


def _verify(path: Path, expected: str, what: str, algorithm: str = "sha256") -> None:
    found = _digest(path, algorithm)
    if found != expected:
        raise DataError(
            f"{what} {path} failed its checksum: expected {algorithm} {expected}, found {found} "
            f"({path.stat().st_size} bytes). The file is corrupted, truncated or not the canonical one; "
            "replace or delete it."
        )


def _mirror_env() -> str | None:
    return os.environ.get("VAE_DATA_MIRROR") or None


def _from_mirror(filename: str) -> Path | None:
    """The mirror's copy of ``filename``, verified; None if there is no mirror or it lacks the file."""
    mirror_env = _mirror_env()
    if mirror_env is None:
        return None
    mirror = Path(mirror_env)
    if not mirror.is_dir():
        raise DataError(f"VAE_DATA_MIRROR={mirror_env} is not a directory")
    mirrored = mirror / filename
    if not mirrored.is_file():
        return None
    sums = _read_sums(mirror)
    if filename not in sums:
        raise DataError(
            f"{mirrored} is not listed in {mirror / 'SHA256SUMS'}: expected an entry for "
            f"{filename!r}, found entries for {sorted(sums)}"
        )
    _verify(mirrored, sums[filename], "mirror file")
    return mirrored


def _places(filename: str) -> str:
    """Where ``filename`` was looked for, in words."""
    mirror_env = _mirror_env()
    return f"the cache ({data_dir() / filename})" + (
        f" and the mirror ({Path(mirror_env) / filename})" if mirror_env else ""
    )


# --- atomic writes and downloads ----------------------------------------------------------------------------


def _clear_stale(directory: Path, name: str) -> None:
    """Create ``directory`` and remove what killed downloads or builds of ``name`` left in it."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:  # a file in the way, a read-only parent
        raise DataError(
            f"cannot use {directory} as the data cache ({exc}): expected a writable directory. Set "
            "VAE_DATA_DIR to one, or put the files in VAE_DATA_MIRROR"
        ) from exc
    if not os.access(directory, os.W_OK | os.X_OK):
        raise DataError(
            f"the data cache {directory} is read-only: expected a writable directory to keep {name}. Set "
            "VAE_DATA_DIR to one, or put the files in VAE_DATA_MIRROR"
        )
    now = time.time()
    for stale in directory.glob(f".{glob.escape(name)}.*.part"):
        # .<name>.<pid>.<random>.part: its process is gone; or untouched for an hour
        pid = stale.name[len(name) + 2 :].split(".", 1)[0]
        dead = pid.isdigit() and not process_alive(int(pid))
        with suppress(OSError):
            if dead or now - stale.stat().st_mtime > _STALE_PART_S:
                shutil.rmtree(stale) if stale.is_dir() else stale.unlink()


def _progressbar() -> bool:
    """Show pooch's progress bar where someone watches: a terminal or a notebook, not captured output."""
    return sys.stderr.isatty() or "ipykernel" in sys.modules


@contextmanager
def _downloaded(
    url: str, directory: Path, name: str, expected: str | None, algorithm: str = "sha256"
) -> Iterator[Path]:
    """Download ``url`` with pooch into a private folder in ``directory``; yield the file once verified.

    ``expected``: the file's ``algorithm`` hash, or None where none is published (the caller then checks
    the file's structure). The folder and whatever is in it are removed when the block ends, so the caller
    must move the file out to keep it.
    """
    if not url.startswith(("https://", "http://")):
        raise DataError(f"cannot download {name}: expected an http(s) URL, found {url!r}")
    _clear_stale(directory, name)
    folder = Path(tempfile.mkdtemp(prefix=f".{name}.{os.getpid()}.", suffix=".part", dir=directory))
    try:
        path = _fetch(url, folder, name, expected, algorithm)
        os.chmod(path, 0o666 & ~umask())  # pooch's temporary files are 0600
        yield path
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _fetch(url: str, folder: Path, name: str, expected: str | None, algorithm: str) -> Path:
    """One pooch download of ``url`` into ``folder``, its failures as a ``DataError`` saying why."""
    import pooch  # here, not at the top: it loads tqdm.auto, which warns in a notebook that never downloads

    fetcher = pooch.create(
        path=folder,
        base_url="",
        registry={name: f"{algorithm}:{expected}" if expected else None},
        urls={name: url},
        retry_if_failed=RETRIES,
    )
    downloader = pooch.HTTPDownloader(progressbar=_progressbar(), timeout=TIMEOUT_S)
    try:
        return Path(fetcher.fetch(name, downloader=downloader))
    except ValueError as exc:  # pooch: the hash did not match on any attempt
        found = re.search(r"but got ([0-9a-f]+)", str(exc))
        raise DataError(
            f"download of {url} failed its checksum {1 + RETRIES} times: expected {algorithm} "
            f"{expected}, found {found.group(1) if found else exc}; nothing was kept"
        ) from exc
    except (requests.exceptions.RequestException, OSError) as exc:  # HTTP error, refused, timeout
        raise DataError(
            f"could not download {name} from {url} after {1 + RETRIES} attempts ({exc}); nothing was "
            "kept. Check the connection, or put the file in the cache or the mirror (VAE_DATA_DIR, "
            "VAE_DATA_MIRROR)"
        ) from exc


def _download(url: str, target: Path, expected: str, algorithm: str = "sha256") -> None:
    """Download ``url`` to ``target`` atomically, keeping it only if its checksum matches."""
    with _downloaded(url, target.parent, target.name, expected, algorithm) as tmp:
        os.replace(tmp, target)


def _write_atomically(target: Path, write: Callable[[BinaryIO], None]) -> None:
    """``atomic.write_atomically`` into the cache, once what killed writers left there is cleared."""
    _clear_stale(target.parent, target.name)
    write_atomically(target, write)


def _write_npz(target: Path, arrays: Mapping[str, np.ndarray]) -> None:
    _write_atomically(target, lambda f: np.savez_compressed(f, **arrays))
