"""Every notebook, executed end to end by papermill in the smoke profile on the offline mirror."""

import json
import math
import time

import nbformat
import pytest

from vae_utils import run

from .conftest import NOTEBOOK_TIMES

NOTEBOOKS = run.notebooks()


def _leaves(tree, prefix=""):
    for key, value in tree.items():
        if isinstance(value, dict):
            yield from _leaves(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


def _checked_outputs(nb):
    """Text outputs of the cells marked ``# NBVAL_CHECK_OUTPUT``, keyed by source (nbval's convention)."""
    return {
        cell.source: "".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream")
        for cell in nb.cells
        if cell.cell_type == "code" and cell.source.startswith("# NBVAL_CHECK_OUTPUT")
    }


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_committed_notebook_is_a_clean_source(path):
    nb = nbformat.read(path, as_version=4)
    tags = [tag for cell in nb.cells for tag in cell.metadata.get("tags", [])]
    assert tags.count("parameters") == 1, "exactly one cell must be tagged 'parameters' for papermill"
    assert "injected-parameters" not in tags, "commit the source notebook, not a parameterised copy"
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert not errors, f"committed outputs hold errors: {[e.ename for e in errors]}"
    assert "SMOKE = False" in next(c.source for c in nb.cells if "parameters" in c.metadata.get("tags", []))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_code_lines_fit_the_code_column_of_github_and_the_site(path):
    cells = nbformat.read(path, as_version=4).cells
    long = [line for c in cells if c.cell_type == "code" for line in c.source.splitlines() if len(line) > 88]
    assert not long, f"{len(long)} code lines over 88 characters, the first: {long[0]!r}"


@pytest.mark.notebook
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_in_the_smoke_profile(path, tmp_path, monkeypatch, mirror):
    monkeypatch.setenv("VAE_DATA_MIRROR", str(mirror))
    monkeypatch.setenv("VAE_OFFLINE", "1")
    monkeypatch.setenv("VAE_OUTPUT_DIR", str(tmp_path))  # the kernel inherits this environment
    started = time.perf_counter()
    executed = run.execute(path, "smoke", output_dir=tmp_path / "notebooks")
    NOTEBOOK_TIMES[path.name] = time.perf_counter() - started

    # one metrics file per notebook, or per run of a notebook that always names its variant (06)
    results = tmp_path / "results"
    candidates = [results / f"{path.stem}.json", *sorted((results / path.stem).glob("*.json"))]
    files = [f for f in candidates if f.exists()]
    assert len(files) == 1, f"expected one metrics file from the smoke run, found {files}"
    record = json.loads(files[0].read_text())
    assert record["profile"] == "smoke"
    leaves = dict(_leaves(record["metrics"]))
    assert leaves, "the notebook saved no metrics"
    for name, value in leaves.items():
        values = value if isinstance(value, list) and value else [value]  # e.g. one error per label split
        for v in values:
            if isinstance(v, str):  # a setting named in words, such as a likelihood
                assert v.strip(), f"metric {name} is an empty string"
                continue
            assert isinstance(v, (int, float)) and math.isfinite(v), f"metric {name} = {value!r}"
    assert any(not isinstance(v, str) for v in leaves.values()), "the notebook saved no numbers"

    # deterministic cells (shapes, parameter counts) must print what the committed full run printed
    committed = _checked_outputs(nbformat.read(path, as_version=4))
    smoke = _checked_outputs(nbformat.read(executed, as_version=4))
    compare_checked_outputs(committed, smoke)


def compare_checked_outputs(committed: dict, smoke: dict) -> None:
    """Every deterministic cell printed something in the committed run, and the smoke run prints the same."""
    assert smoke.keys() == committed.keys()
    for source, text in committed.items():
        assert text, f"the committed notebook shows nothing for {source.splitlines()[1]!r}: run it in full"
        assert smoke[source] == text, f"output of {source.splitlines()[1]!r} changed"


def test_a_deterministic_cell_committed_without_output_fails_the_comparison():
    cell = "# NBVAL_CHECK_OUTPUT\nprint(model.count_params())"
    compare_checked_outputs({cell: "1,234\n"}, {cell: "1,234\n"})
    with pytest.raises(AssertionError, match="shows nothing"):
        compare_checked_outputs({cell: ""}, {cell: "1,234\n"})
    with pytest.raises(AssertionError, match="changed"):
        compare_checked_outputs({cell: "1,234\n"}, {cell: "1,235\n"})
