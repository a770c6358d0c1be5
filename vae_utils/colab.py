"""Open the notebooks on Colab: ``python -m vae_utils.colab`` writes, from ``pyproject.toml``, each notebook's
"Open in Colab" badge and its Colab set-up cell (the repository's address and the release tag ``v<version>``).

Both cells are tagged ``remove-cell``: the site shows neither, and has the theme's own launch button
(``docs/conf.py`` reads the same address and tag). The set-up cell does nothing outside Colab.
"""

from __future__ import annotations

import sys
import tomllib
from pathlib import Path

import nbformat

from . import home

__all__ = ["badge_cell", "main", "release", "setup_cell", "sync"]

COLAB = "https://colab.research.google.com"
KEY = "vae_colab"  # a cell's metadata: which of the two generated cells it is


def release(pyproject: Path | None = None) -> tuple[str, str]:
    """``(repository address, tag)`` from ``[project.urls] Repository`` and ``v`` + ``[project] version``."""
    project = tomllib.loads(Path(pyproject or home.ROOT / "pyproject.toml").read_text())["project"]
    address = project["urls"]["Repository"].rstrip("/")
    if not address.startswith("https://github.com/") or address.count("/") != 4:
        raise ValueError(
            f"[project.urls] Repository must be https://github.com/<owner>/<name>, found {address!r}"
        )
    return address, f"v{project['version']}"


def badge_cell(notebook: str, address: str, tag: str):
    """A Markdown cell with the "Open in Colab" badge for ``notebooks/<notebook>`` at ``tag``."""
    url = f"{COLAB}/github/{address.removeprefix('https://github.com/')}/blob/{tag}/notebooks/{notebook}"
    badge = f"{COLAB}/assets/colab-badge.svg"
    cell = nbformat.v4.new_markdown_cell(f"[![Open in Colab]({badge})]({url})")
    cell.metadata = {KEY: "badge", "tags": ["remove-cell"]}
    cell.id = "colab-badge"  # fixed, so that writing the cell again changes nothing
    return cell


def setup_cell(address: str, tag: str):
    """The first code cell: on Colab only, pip-installs this package from ``address`` at ``tag``."""
    cell = nbformat.v4.new_code_cell(
        "# Colab only: install vae_utils, the package these notebooks share, at the release\n"
        "# they were written for. It brings no Keras backend, so Colab's TensorFlow and JAX\n"
        "# stay as they are; data, results and figures go under the working directory.\n"
        "import sys\n"
        "\n"
        'if "google.colab" in sys.modules:\n'
        "    import subprocess\n"
        "\n"
        f'    PACKAGE = "vae-utils @ git+{address}@{tag}"\n'
        '    subprocess.run([sys.executable, "-m", "pip", "install", "-q", PACKAGE], check=True)'
    )
    cell.metadata = {KEY: "setup", "tags": ["remove-cell"]}  # the site has its own launch button
    cell.id = "colab-setup"
    return cell


def sync(path: Path, address: str, tag: str) -> bool:
    """Put the badge first and the set-up cell before the first code cell of ``path``; True if it changed."""
    nb = nbformat.read(path, as_version=4)
    before = nbformat.writes(nb)
    cells = [c for c in nb.cells if KEY not in c.metadata]
    first_code = next(i for i, c in enumerate(cells) if c.cell_type == "code")
    cells.insert(first_code, setup_cell(address, tag))
    nb.cells = [badge_cell(Path(path).name, address, tag), *cells]
    if nbformat.writes(nb) == before:
        return False
    nbformat.write(nb, path)
    return True


def main(argv=None) -> int:
    address, tag = release()
    for path in sorted((home.ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        if sync(path, address, tag):
            print(f"{path.name}: badge and set-up cell written for {address} at {tag}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
