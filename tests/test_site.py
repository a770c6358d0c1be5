"""The rendered site (``make site``, which ``make test`` runs first), checked in headless Chromium as a reader
sees it: after MathJax typeset the page and every image decoded."""

import base64
import functools
import hashlib
import http.server
import json
import re
import threading
import urllib.parse
import urllib.request
from pathlib import Path

import nbformat
import numpy as np
import papermill
import pytest

from vae_utils import explorer, publish, run

from .browser import Browser

ROOT = Path(__file__).resolve().parents[1]
SITE = ROOT / "build" / "site"
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9]*.ipynb"))
SCREENSHOTS = ROOT / "build" / "site-screenshots"
# pydata-sphinx-theme logs this with console.error when a fresh browser has no stored light/dark choice
THEME_NOTICE = "Got invalid theme mode"

# What a reader should never find in an output: a machine's paths, Python reprs, warnings, missing values
NOISE = re.compile(
    r"PosixPath\(|np\.(float|int)\d*\(|(?<![\w.~])/(home|work|tmp|root|Users|usr|opt|var|mnt)/"
    r"|\bWARNING\b|Warning:|\bNaN\b|\bnan\b|<object at 0x|\bat 0x[0-9a-f]{6,}"
)
# TeX that MathJax did not typeset: a dollar sign, \( \[ or a TeX command left in the rendered text
RAW_TEX = re.compile(r"\$|\\[(\[]|\\[A-Za-z]{2,}")


def expected_figures(notebook: Path) -> list[Path]:
    """The figures of the run that a committed notebook shows: ``figures/<stem>_*.png``, or for a notebook
    run as a sweep, the files of the variant its parameters' defaults name (``<stem>__<tag>_*.png``)."""
    files = sorted((ROOT / "figures").glob(f"{notebook.stem}_*.png"))
    plain = [f for f in files if not f.name.startswith(f"{notebook.stem}__")]
    swept = [f for f in files if f not in plain]
    if not swept:
        return plain
    defaults = {k: v["default"] for k, v in papermill.inspect_notebook(str(notebook)).items()}
    tag_names = re.findall(r"([A-Z][A-Z0-9_]*)=", swept[0].name[len(notebook.stem) + 2 :])
    tag = run.variant_tag({name: defaults[name] for name in tag_names})
    return plain + [f for f in swept if f.name.startswith(f"{notebook.stem}__{tag}_")]


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture(scope="module")
def site():
    """The built site served on 127.0.0.1; fails if it is missing or older than a notebook or a figure."""
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


@pytest.fixture(scope="module")
def browser():
    chromium = Browser()
    yield chromium
    chromium.close()


@pytest.fixture(scope="module")
def pages(site, browser):
    """What each notebook's page shows once loaded: images, maths, prose and outputs (one load per page)."""
    seen = {}
    for notebook in NOTEBOOKS:
        url = f"{site}/notebooks/{notebook.stem}.html"
        browser.open(url)
        seen[notebook.stem] = browser.evaluate(_READ_PAGE) | {
            "url": url,
            "errors": [e for e in browser.errors if THEME_NOTICE not in e],
        }
    return seen


_READ_PAGE = r"""(() => {
  const article = document.querySelector("article") || document.body;
  const text = (root, drop) => {
    const copy = root.cloneNode(true);
    copy.querySelectorAll(drop).forEach(e => e.remove());
    return copy.textContent;
  };
  return {
    images: [...article.querySelectorAll("img")]
      .map(i => ({src: i.currentSrc, loaded: i.complete && i.naturalWidth > 0})),
    math: article.querySelectorAll(".math").length,
    typeset: article.querySelectorAll("mjx-container").length,
    math_errors: article.querySelectorAll("mjx-merror").length,
    // displayed equations wider than the column: cut off, or scrolled sideways, in the reader's view
    wide_equations: [...article.querySelectorAll('mjx-container[display="true"]')]
      .filter(e => e.scrollWidth > e.clientWidth + 1)
      .map(e => `${e.scrollWidth} px in ${e.clientWidth}: ${e.textContent.slice(0, 60)}`),
    prose: text(article, ".cell, mjx-container, script, style, code, pre, .headerlink"),
    outputs: [...article.querySelectorAll(".cell_output")].map(o => text(o, "mjx-container, script, style")),
    tables: article.querySelectorAll(".cell_output table").length,
    // tables wider than the space they are shown in: a column hidden behind a sideways scroll
    wide_tables: [...article.querySelectorAll("table")]
      .filter(t => t.scrollWidth > t.parentElement.clientWidth + 1)
      .map(t => `${t.scrollWidth} px in ${t.parentElement.clientWidth}: ${t.textContent.slice(0, 40)}`),
    scripts: [...document.querySelectorAll("script[src]")].map(s => s.getAttribute("src")),
  };
})()"""


def _table_outputs(notebook: Path) -> int:
    """Outputs of the notebook that hold a table (pandas' HTML, or a Markdown table)."""
    count = 0
    for cell in nbformat.read(notebook, as_version=4).cells:
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            count += "<table" in data.get("text/html", "") or "|---" in data.get("text/markdown", "")
    return count


def test_the_root_points_at_the_index_which_links_every_notebook(site, browser):
    with urllib.request.urlopen(f"{site}/index.html") as response:
        assert 'url=docs/index.html"' in response.read().decode()
    browser.open(f"{site}/docs/index.html")
    links = browser.evaluate("[...document.querySelectorAll('a')].map(a => a.getAttribute('href'))")
    for notebook in NOTEBOOKS:
        assert f"../notebooks/{notebook.stem}.html" in links
    # a teacher's landing page: the order of study as a table, the repository, a link for each reference
    assert browser.evaluate("document.querySelectorAll('article table tbody tr').length") == len(NOTEBOOKS)
    assert "https://github.com/vae-step-by-step/vae-notebooks" in links
    assert len([link for link in links if link.startswith("https://arxiv.org/abs/")]) >= 5


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=[nb.stem for nb in NOTEBOOKS])
def test_every_figure_the_run_saved_is_on_the_page_as_a_loaded_image(site, pages, notebook):
    page = pages[notebook.stem]
    broken = [i["src"] for i in page["images"] if not i["loaded"]]
    assert not broken, f"images that did not load: {broken}"
    shown = set()
    for image in page["images"]:
        with urllib.request.urlopen(image["src"]) as response:
            assert response.headers["Content-Type"].startswith("image/"), image["src"]
            shown.add(_sha(response.read()))
    missing = [f.name for f in expected_figures(notebook) if _sha(f.read_bytes()) not in shown]
    assert not missing, f"figures/ holds these figures of the run, but the page does not show them: {missing}"


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=[nb.stem for nb in NOTEBOOKS])
def test_every_equation_is_typeset_and_no_raw_tex_is_left_in_the_prose(pages, notebook):
    page = pages[notebook.stem]
    assert page["math"] > 0 and page["typeset"] >= page["math"] and page["math_errors"] == 0
    leftovers = [m.group(0) for m in RAW_TEX.finditer(page["prose"])]
    context = [page["prose"][max(m.start() - 40, 0) : m.end() + 40] for m in RAW_TEX.finditer(page["prose"])]
    assert not leftovers, f"TeX that MathJax did not typeset, in: {context[:3]}"


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=[nb.stem for nb in NOTEBOOKS])
def test_every_displayed_equation_and_table_fits_the_column(pages, notebook):
    assert not pages[notebook.stem]["wide_equations"], "equations wider than the page's column"
    assert not pages[notebook.stem]["wide_tables"], "tables wider than the page's column"


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=[nb.stem for nb in NOTEBOOKS])
def test_tables_render_as_tables_and_outputs_hold_no_paths_reprs_warnings_or_nan(pages, notebook):
    page = pages[notebook.stem]
    assert page["tables"] >= _table_outputs(notebook), "a table output did not render as a table"
    assert not re.search(r"\|\s*-{3,}\s*\|", page["prose"] + "".join(page["outputs"])), "a table as text"
    noisy = [m.group(0) for text in page["outputs"] for m in NOISE.finditer(text)]
    assert not noisy, f"outputs a reader should not see: {noisy}"


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=[nb.stem for nb in NOTEBOOKS])
def test_the_page_loads_everything_from_the_site_without_console_errors(pages, notebook):
    page = pages[notebook.stem]
    assert page["scripts"] and not [src for src in page["scripts"] if "//" in src]  # no CDN
    assert not page["errors"], page["errors"]


def test_screenshots_of_what_a_reader_sees_are_kept(site, browser):
    """The page's top, 03's horse-to-car interpolation and 07's table, in build/site-screenshots/."""
    interpolation = ROOT / "figures" / "03_cifar_horse_car_interpolation_all_horse_to_car.png"
    shots = {
        "01_vae_mnist": [("01_vae_mnist", "article")],
        "03_cifar_horse_car_interpolation": [
            ("03_cifar_horse_car_interpolation", f'img[src$="{_sha(interpolation.read_bytes())}.png"]')
        ],
        "07_baselines_and_comparison": [("07_comparison_table", ".cell_output table")],
    }
    for stem, targets in shots.items():
        browser.open(f"{site}/notebooks/{stem}.html")
        for name, selector in targets:
            browser.screenshot(SCREENSHOTS / f"{name}.png", selector)
            assert (SCREENSHOTS / f"{name}.png").stat().st_size > 10_000, name


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=[nb.stem for nb in NOTEBOOKS])
def test_the_committed_notebook_shows_each_saved_figure_as_github_does(notebook):
    """GitHub shows the notebook's own outputs: each figure must be embedded, byte for byte the saved file."""
    embedded = {}
    for cell in nbformat.read(notebook, as_version=4).cells:
        for output in cell.get("outputs", []):
            name = output.get("metadata", {}).get(publish.FIGURE_KEY)
            if name and "image/png" in output.get("data", {}):
                embedded[name] = output["data"]["image/png"]
    for figure in expected_figures(notebook):
        assert figure.name in embedded, f"{notebook.name} does not show {figure.name}"
        assert _sha(base64.b64decode(embedded[figure.name])) == _sha(figure.read_bytes())
    text = json.dumps([c.get("outputs", []) for c in nbformat.read(notebook, as_version=4).cells])
    text = re.sub(r'"image/png": "[^"]*"', "", text)
    noisy = [m.group(0) for m in NOISE.finditer(text)]
    assert not noisy, f"outputs a reader should not see: {noisy}"


# ---- the latent explorer: explorer/index.html with the decoders the full runs exported ----------------
EXPORTS = sorted((ROOT / "figures").glob("*_explorer_*.json"))
EXPLORER_URL = "https://vae-step-by-step.github.io/vae-notebooks/explorer/"


def _exporting_notebooks() -> dict[str, bool]:
    """Each notebook whose code exports a decoder, and whether its committed outputs come from a run of
    that cell (its output is there)."""
    found = {}
    for notebook in NOTEBOOKS:
        for cell in nbformat.read(notebook, as_version=4).cells:
            if cell.cell_type == "code" and "explorer.export(" in cell.source:
                found[notebook.stem] = bool(cell.outputs)
    return found


def test_the_notebooks_that_export_a_decoder_published_it_and_link_the_explorer():
    exporting = _exporting_notebooks()
    assert set(exporting) >= {"01_vae_mnist", "04_vae_faces"}
    for stem, ran in exporting.items():
        text = (ROOT / "notebooks" / f"{stem}.ipynb").read_text()
        assert EXPLORER_URL in text, f"{stem} exports a decoder but does not link the explorer"
        if ran:  # its committed outputs are those of a run that exported: the file must be in figures/
            assert list((ROOT / "figures").glob(f"{stem}_explorer_*.json")), f"{stem} ran its export; no file"


def test_the_landing_page_links_the_explorer_which_opens_without_errors_under_2_mb(site, browser):
    browser.open(f"{site}/docs/index.html")
    links = browser.evaluate("[...document.querySelectorAll('article a')].map(a => a.href)")
    assert f"{site}/explorer/index.html" in links
    browser.open(f"{site}/explorer/index.html")
    browser.evaluate("latentExplorer.ready")
    loaded = browser.evaluate("[location.href, ...performance.getEntriesByType('resource').map(r => r.name)]")
    assert all(url.startswith(site) for url in loaded), f"fetched from another host: {loaded}"
    size = sum((SITE / urllib.parse.urlparse(url).path.lstrip("/")).stat().st_size for url in loaded)
    assert size < 2_000_000, f"the explorer loads {size / 1e6:.2f} MB: {loaded}"
    names = browser.evaluate("(window.VAE_EXPLORER_INDEX || []).map(e => e.name)")
    assert len(names) == len(EXPORTS), f"the page lists {names}; figures/ holds {[p.name for p in EXPORTS]}"
    assert browser.errors == []


def test_the_explorer_draws_each_published_decoder_as_its_weights_decode(site, browser):
    ran = sorted(stem for stem, ran in _exporting_notebooks().items() if ran)
    assert sorted(p.name.split("_explorer_")[0] for p in EXPORTS) == ran, (
        "exports and the runs that made them"
    )
    for export in EXPORTS:
        _check_drawn(site, browser, export)


def _check_drawn(site, browser, export):
    payload = json.loads(export.read_text())
    assert payload["format"] == explorer.FORMAT and payload["provenance"]["profile"] == "full"
    assert payload["float16_error"]["max"] < 1 / 255, "float16 moved a pixel by a grey level or more"
    chain = explorer.chain_from_json(payload)
    browser.open("about:blank")
    browser.open(f"{site}/explorer/index.html#{payload['name']}")
    browser.evaluate("latentExplorer.ready")
    for z in [(0.0, 0.0), (1.3, -0.4), (-2.1, 1.7), (0.6, 2.4), (-1.0, -2.8)]:
        browser.evaluate(f"latentExplorer.setLatent({z[0]}, {z[1]})")
        drawn = np.array(browser.evaluate("latentExplorer.pixels()"), dtype=float)
        expected = 255 * explorer.decode(chain, np.array([z], dtype="float32"), payload["output"])[0]
        assert np.abs(drawn - expected).max() <= 2, f"{export.name} at z={z}"
    assert browser.errors == []
