"""The rendered site (``make site``, which ``make test`` runs first), checked in headless Chromium."""

import functools
import http.server
import json
import re
import shutil
import subprocess
import threading
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SITE = ROOT / "build" / "site"
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9]*.ipynb"))
SCREENSHOTS = ROOT / "build" / "site-screenshots"


@pytest.fixture(scope="module")
def site():
    """The built site served on 127.0.0.1; fails if it is missing or older than a notebook."""
    built = SITE / "docs" / "index.html"  # written by the build (the root index.html is copied, mtime kept)
    if not built.is_file():
        pytest.fail(f"{SITE} has no docs/index.html: run make site (make test runs it first)")
    stale = [nb.name for nb in NOTEBOOKS if nb.stat().st_mtime > built.stat().st_mtime]
    if stale:
        pytest.fail(f"the site is older than {stale}: run make site")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(SITE))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _chromium(*args) -> str:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.fail("headless Chromium is needed (Debian: apt-get install chromium; .ci/run installs it)")
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=20000"]
    done = subprocess.run([browser, *flags, *args], capture_output=True, text=True, timeout=120, check=True)
    return done.stdout


def _image_outputs(notebook: Path) -> int:
    cells = json.loads(notebook.read_text())["cells"]
    return sum("image/png" in output.get("data", {}) for cell in cells for output in cell.get("outputs", []))


def test_the_root_points_at_the_index_which_links_every_notebook(site):
    with urllib.request.urlopen(f"{site}/index.html") as response:
        assert 'url=docs/index.html"' in response.read().decode()
    index = _chromium("--dump-dom", f"{site}/docs/index.html")
    for notebook in NOTEBOOKS:
        assert f'href="../notebooks/{notebook.stem}.html"' in index


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=[nb.stem for nb in NOTEBOOKS])
def test_every_notebook_page_shows_its_figures_and_renders_its_equations(site, notebook):
    url = f"{site}/notebooks/{notebook.stem}.html"
    with urllib.request.urlopen(url) as response:
        static = response.read().decode()
    scripts = re.findall(r'<script[^>]*\ssrc="([^"]+)"', static)
    assert scripts and not [src for src in scripts if "//" in src]  # everything from the site: no CDN
    dom = _chromium("--dump-dom", url)
    # every maths element of the page was typeset by MathJax, without errors
    n_math = len(re.findall(r'class="math[ "]', static))
    assert n_math > 0
    assert dom.count("<mjx-container") >= n_math and "<mjx-merror" not in dom
    # every figure of the notebook's outputs is on the page and served as an image
    images = re.findall(r'<img[^>]*\ssrc="([^"]+)"', dom)
    assert len([src for src in images if "_images/" in src]) >= _image_outputs(notebook)
    for src in images:
        with urllib.request.urlopen(urllib.request.urljoin(url, src)) as response:
            assert response.headers["Content-Type"].startswith("image/"), src
            assert len(response.read()) > 100, src
    if notebook.stem.startswith("01_"):
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        shot = SCREENSHOTS / f"{notebook.stem}.png"
        _chromium("--window-size=1280,2000", f"--screenshot={shot}", url)
        assert shot.stat().st_size > 10_000
