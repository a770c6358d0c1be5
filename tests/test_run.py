"""The papermill runner on small notebooks written by the tests."""

import json

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from vae_utils import run


def _notebook(path, body):
    params = new_code_cell("SMOKE = False\nEPOCHS = 50")
    params.metadata["tags"] = ["parameters"]
    nb = new_notebook(cells=[params, new_code_cell("EPOCHS = 1 if SMOKE else EPOCHS"), new_code_cell(body)])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)
    return path


@pytest.mark.notebook
def test_smoke_profile_injects_smoke_and_writes_elsewhere(tmp_path):
    source = _notebook(tmp_path / "01_demo.ipynb", "import json; print(json.dumps({'epochs': EPOCHS}))")
    before = source.read_text()
    out = run.execute(source, "smoke", output_dir=tmp_path / "out")
    assert out == tmp_path / "out" / "01_demo.ipynb"
    assert source.read_text() == before  # the source notebook is left alone
    executed = nbformat.read(out, as_version=4)
    assert json.loads(executed.cells[-1].outputs[0]["text"]) == {"epochs": 1}
    assert "injected-parameters" in executed.cells[1].metadata.get("tags", [])


@pytest.mark.notebook
def test_full_profile_keeps_outputs_and_strips_volatile_metadata(tmp_path):
    source = _notebook(tmp_path / "01_demo.ipynb", "print(EPOCHS)")
    run.execute(source, "full")
    executed = nbformat.read(source, as_version=4)
    assert executed.cells[-1].outputs[0]["text"] == "50\n"
    assert all(c.execution_count is None for c in executed.cells if c.cell_type == "code")
    assert "papermill" not in executed.metadata
    assert not any("injected-parameters" in c.metadata.get("tags", []) for c in executed.cells)


@pytest.mark.notebook
def test_a_failing_notebook_leaves_no_partial_output(tmp_path):
    source = _notebook(tmp_path / "01_demo.ipynb", "raise RuntimeError('boom')")
    before = source.read_text()
    with pytest.raises(Exception, match="boom"):
        run.execute(source, "full")
    assert source.read_text() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["01_demo.ipynb"]


def test_bad_profile_and_missing_notebook_are_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no notebook at"):
        run.execute(tmp_path / "missing.ipynb", "smoke")
    with pytest.raises(ValueError, match="profile must be 'smoke' or 'full', found 'fast'"):
        run.execute(_notebook(tmp_path / "01_demo.ipynb", "pass"), "fast")


def test_notebooks_are_found_in_reading_order():
    names = [p.name for p in run.notebooks()]
    assert names and names == sorted(names) and names[0] == "01_vae_mnist.ipynb"


def test_a_sweep_is_every_combination_of_the_values_in_order():
    assert run.parse_sweep(["N=100,600", "SEED=0,1"]) == [
        {"N": 100, "SEED": 0},
        {"N": 100, "SEED": 1},
        {"N": 600, "SEED": 0},
        {"N": 600, "SEED": 1},
    ]
    assert run.parse_sweep(["METHOD=svm,spreading", "RATE=0.5"]) == [
        {"METHOD": "svm", "RATE": 0.5},
        {"METHOD": "spreading", "RATE": 0.5},
    ]
    assert run.variant_tag({"N_LABELLED": 100, "SEED": 0}) == "N_LABELLED=100_SEED=0"


@pytest.mark.parametrize(
    ("specs", "message"),
    [
        (["N"], r"NAME=V1,V2,\.\.\. with NAME a parameter of the notebook, found 'N'"),
        (["2N=1"], r"found '2N=1'"),
        (["N="], r"found 'N='"),
        (["N=1", "N=2"], "parameter N is swept twice"),
    ],
)
def test_a_malformed_sweep_is_a_clear_error(specs, message):
    with pytest.raises(ValueError, match=message):
        run.parse_sweep(specs)


def test_a_variant_that_cannot_name_a_file_is_refused():
    with pytest.raises(ValueError, match=r"found 'NAME=a/b'"):
        run.variant_tag({"NAME": "a/b"})


@pytest.mark.notebook
def test_a_sweep_runs_once_per_combination_and_leaves_the_notebook_alone(tmp_path):
    source = _notebook(tmp_path / "05_demo.ipynb", "print(EPOCHS * 10)")
    before = source.read_text()
    assert (
        run.main(
            [str(source), "--profile", "full", "--sweep", "EPOCHS=2,3", "--output-dir", str(tmp_path / "o")]
        )
        == 0
    )
    assert source.read_text() == before  # a sweep never rewrites the committed notebook
    for epochs in (2, 3):
        executed = nbformat.read(tmp_path / "o" / f"05_demo__EPOCHS={epochs}.ipynb", as_version=4)
        assert executed.cells[-1].outputs[0]["text"] == f"{epochs * 10}\n"
