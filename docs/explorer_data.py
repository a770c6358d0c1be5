"""The latent explorer's data on the site: each decoder a notebook's full run exported
(``figures/*_explorer_*.json``, written by ``vae_utils.explorer.export``) wrapped in a script that the page
loads with a ``<script>`` element, not a fetch, so that the page also opens from ``file://``.

Standard library only: the site is built with its own packages (``make site``).
"""

from __future__ import annotations

import json
from pathlib import Path

REQUIRED = ("format", "name", "title", "image", "layers", "codes", "provenance")


def write(exports: list[Path], folder: Path) -> list[dict]:
    """Write ``<name>.js`` for each export and ``index.js`` listing them into ``folder``; return the list."""
    folder.mkdir(parents=True, exist_ok=True)
    index = []
    for path in sorted(exports):
        data = json.loads(Path(path).read_text())
        missing = [key for key in REQUIRED if key not in data]
        if missing:
            raise ValueError(
                f"{path} is not an explorer export: it lacks {missing} (expected {list(REQUIRED)})"
            )
        name = data["name"]
        if any(entry["name"] == name for entry in index):
            raise ValueError(f"two exports are named {name!r}: {path} and another; names must differ")
        script = f"(window.VAE_EXPLORER_DATA = window.VAE_EXPLORER_DATA || {{}})[{json.dumps(name)}] = "
        (folder / f"{name}.js").write_text(script + json.dumps(data, separators=(",", ":")) + ";\n")
        index.append({"name": name, "title": data["title"], "script": f"data/{name}.js"})
    (folder / "index.js").write_text(f"window.VAE_EXPLORER_INDEX = {json.dumps(index, indent=1)};\n")
    return index
