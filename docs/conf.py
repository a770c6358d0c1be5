"""Sphinx configuration of the rendered notebooks (``make site``): the committed outputs, never re-executed.

Built from the repository root (``sphinx-build -c docs . build/site``) so that the pages are the notebooks
themselves; MathJax is served from the site (``MATHJAX_DIR``, unpacked from the npm package by ``make``),
so the pages need no CDN.
"""

import os
import sys
import tomllib
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import explorer_data  # noqa: E402  (beside this file)

project = "VAE notebooks"
author = "the vae-notebooks contributors"
copyright = "the vae-notebooks contributors; prose and figures CC BY 4.0, code MIT"

root_doc = "docs/index"
include_patterns = ["docs/index.md", "notebooks/[0-9]*.ipynb"]
exclude_patterns = ["build", ".venv", "data", "notebooks/.*"]
extensions = ["myst_nb"]
myst_enable_extensions = ["dollarmath", "amsmath"]
nb_execution_mode = "off"  # render the outputs of the recorded full runs
nb_render_markdown_format = "gfm"  # Markdown outputs (07's comparison table) with GitHub's tables
suppress_warnings = ["mystnb.unknown_mime_type"]

html_theme = "sphinx_book_theme"
html_title = "Variational autoencoders, in runnable notebooks"
# the repository's address and release tag, from pyproject.toml as the notebooks' Colab badges take them
_project = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())["project"]
html_theme_options = {
    "show_toc_level": 2,
    "use_download_button": True,
    "repository_url": _project["urls"]["Repository"],
    "repository_branch": f"v{_project['version']}",
    "path_to_docs": "",
    "use_repository_button": True,
    "launch_buttons": {"colab_url": "https://colab.research.google.com"},
}

_mathjax = Path(os.environ.get("MATHJAX_DIR", "")).resolve()
if not (_mathjax / "tex-mml-chtml.js").is_file():
    raise RuntimeError(
        f"MATHJAX_DIR={os.environ.get('MATHJAX_DIR')!r} should be MathJax's es5 folder (holding "
        "tex-mml-chtml.js): run make site, which unpacks it from the npm package mathjax"
    )
html_static_path = [str(_mathjax.parent), "_static"]  # mathjax/ (unpacked by make) and our CSS
html_css_files = ["notebooks.css"]
html_extra_path = ["_extra"]  # index.html at the site's root, pointing at docs/index.html
mathjax_path = f"{_mathjax.name}/tex-mml-chtml.js"
html_favicon = "_static/favicon.svg"  # also spares every page a request for /favicon.ico that fails


def _explorer_data(app, exception):
    """The latent explorer (docs/_extra/explorer/) with the decoders the full runs exported (figures/)."""
    if exception is None:
        exports = (Path(app.srcdir) / "figures").glob("*_explorer_*.json")
        explorer_data.write(list(exports), Path(app.outdir) / "explorer" / "data")


def setup(app):
    app.connect("build-finished", _explorer_data)
