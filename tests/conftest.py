"""Shared fixtures: an isolated data cache, the offline mirror, a non-interactive plotting backend."""

import os
from pathlib import Path

import matplotlib
import pytest

matplotlib.use("Agg")

ROOT = Path(__file__).resolve().parents[1]


def _mirror() -> Path | None:
    candidates = [os.environ.get("VAE_DATA_MIRROR"), ROOT.parent / "shared" / "datasets"]
    for candidate in candidates:
        if candidate and (Path(candidate) / "SHA256SUMS").is_file():
            return Path(candidate).resolve()  # the notebooks' kernels run in notebooks/
    return None


#: Found once, when the tests start: fixtures that empty the environment (``isolated``) may run first.
MIRROR = _mirror()


@pytest.fixture
def mirror() -> Path:
    """The offline mirror of prepared datasets (``$VAE_DATA_MIRROR`` or ``../shared/datasets``)."""
    path = MIRROR
    if path is None:
        if os.environ.get("CI"):
            pytest.fail("CI must provide the dataset mirror: set VAE_DATA_MIRROR")
        pytest.skip("no dataset mirror: set VAE_DATA_MIRROR to run the tests that read real data")
    return path


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    """An empty cache directory, no mirror, offline: each test states where data may come from."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("VAE_DATA_DIR", str(cache))
    monkeypatch.delenv("VAE_DATA_MIRROR", raising=False)
    monkeypatch.setenv("VAE_OFFLINE", "1")
    return cache


@pytest.fixture
def mnist(mirror, monkeypatch, isolated):
    """MNIST from the mirror."""
    from vae_utils import data

    monkeypatch.setenv("VAE_DATA_MIRROR", str(mirror))
    return data.load("mnist")


NOTEBOOK_TIMES: dict[str, float] = {}


def pytest_terminal_summary(terminalreporter):
    if NOTEBOOK_TIMES:
        terminalreporter.section("notebook smoke times")
        for name, seconds in NOTEBOOK_TIMES.items():
            terminalreporter.write_line(f"{name}: {seconds:.1f} s")
