"""Shared fixtures: an isolated data cache, the offline mirror, a local file server, a plotting backend."""

import functools
import http.server
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import matplotlib
import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

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


class _FileHandler(http.server.SimpleHTTPRequestHandler):
    """Serves files, records each request's path and plays the faults queued for a path first."""

    def log_message(self, *args):
        pass

    def do_GET(self):
        self.server.requests.append(self.path)
        faults = self.server.faults.get(self.path)
        fault = faults.pop(0) if faults else None
        if isinstance(fault, int):
            self.send_error(fault)
        elif fault == "truncate":  # announce the whole file, send half of it, hang up
            body = (Path(self.directory) / self.path.lstrip("/")).read_bytes()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body[: len(body) // 2])
            self.close_connection = True
        else:
            super().do_GET()


class FileServer:
    """A file server on 127.0.0.1 for the files under a folder (see the ``http_files`` fixture)."""

    def __init__(self, root: Path):
        self.root = root
        handler = functools.partial(_FileHandler, directory=str(root))
        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.requests, self._server.faults = [], {}
        threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True).start()

    def url(self, path: Path) -> str:
        """The URL of ``path``, a file under the served folder (it need not exist)."""
        return f"http://127.0.0.1:{self._server.server_address[1]}/{path.relative_to(self.root).as_posix()}"

    @property
    def requests(self) -> list[str]:
        """The paths requested so far, in order."""
        return self._server.requests

    def fail(self, path: Path, *faults) -> None:
        """Answer the next requests for ``path`` with ``faults``: HTTP status codes or "truncate"."""
        self._server.faults["/" + path.relative_to(self.root).as_posix()] = list(faults)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def http_files(tmp_path, monkeypatch):
    """A file server on 127.0.0.1 serving ``tmp_path``: the machines that run the tests have no internet.
    pooch's back-off between attempts is recorded in ``waits`` (seconds) instead of slept."""
    import types

    import pooch.core

    server = FileServer(tmp_path)
    server.waits = []
    monkeypatch.setattr(pooch.core, "time", types.SimpleNamespace(sleep=server.waits.append))
    yield server
    server.close()


def pytest_collection_modifyitems(items):
    """Mark every test that reads the offline mirror, so that ``-m "not mirror"`` runs the rest anywhere."""
    for item in items:
        if "mirror" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.mirror)


NOTEBOOK_TIMES: dict[str, float] = {}


def pytest_terminal_summary(terminalreporter):
    if NOTEBOOK_TIMES:
        terminalreporter.section("notebook smoke times")
        for name, seconds in NOTEBOOK_TIMES.items():
            terminalreporter.write_line(f"{name}: {seconds:.1f} s")


@pytest.fixture(scope="session")
def wheel(tmp_path_factory) -> Path:
    """A wheel of this package, built once (no dependencies, no build isolation: it needs no network)."""
    out = tmp_path_factory.mktemp("wheel")
    command = [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation"]
    subprocess.run([*command, "-w", out, ROOT], check=True, capture_output=True, cwd=out)
    (built,) = out.glob("vae_utils-*.whl")
    return built


def write_notebook(path, body, params="SMOKE = False\nEPOCHS = 50"):
    """A two-cell notebook: a cell tagged ``parameters`` holding ``params``, then ``body``."""
    cell = new_code_cell(params)
    cell.metadata["tags"] = ["parameters"]
    nb = new_notebook(cells=[cell, new_code_cell(body)])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)
    return path


#: The metrics file of an earlier full run, where the runner tests publish.
EARLIER_RESULTS = json.dumps({"profile": "full", "metrics": {}})


@pytest.fixture
def published(tmp_path, monkeypatch):
    """Where runs publish (``$VAE_OUTPUT_DIR``), holding a full run's figure and metrics."""
    base = tmp_path / "published"
    (base / "figures").mkdir(parents=True)
    (base / "results").mkdir()
    (base / "figures" / "01_demo_curve.png").write_text("earlier run")
    (base / "results" / "01_demo.json").write_text(EARLIER_RESULTS)
    monkeypatch.setenv("VAE_OUTPUT_DIR", str(base))
    return base
