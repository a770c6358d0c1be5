"""The papermill runner on small notebooks written by the tests."""

import base64
import json
import os
import re
import signal
import subprocess
import sys
import time

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from vae_utils import publish, run

from .conftest import EARLIER_RESULTS, write_notebook


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


SAVES = """
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
from vae_utils import repro
run = repro.Run("01_demo", seed=0, smoke=SMOKE)
fig = plt.figure()
run.save_figure(fig, "curve")
run.save_metrics({"epochs": EPOCHS})
"""


def _staging_left(pid=None):
    """What a run by process ``pid`` (this one: the runner in-process) left in the staging folder; other
    processes' runs, such as another test worker's, stage beside it under their own pid."""
    pattern = f"01_demo.{pid or os.getpid()}.*"
    return [p for p in run.STAGING_DIR.glob(pattern)] if run.STAGING_DIR.exists() else []


@pytest.mark.notebook
def test_a_run_that_fails_at_its_last_cell_publishes_none_of_its_figures_or_metrics(tmp_path, published):
    source = write_notebook(tmp_path / "01_demo.ipynb", SAVES + "\nraise RuntimeError('last cell failed')")
    before = source.read_text()
    with pytest.raises(Exception, match="last cell failed"):
        run.execute(source, "full")
    assert source.read_text() == before
    assert (published / "figures" / "01_demo_curve.png").read_text() == "earlier run"
    assert (published / "results" / "01_demo.json").read_text() == EARLIER_RESULTS
    assert sorted(p.name for p in tmp_path.iterdir()) == ["01_demo.ipynb", "published"]
    assert _staging_left() == []


@pytest.mark.notebook
def test_a_finished_run_publishes_its_figures_metrics_and_notebook_together(tmp_path, published):
    (published / "figures" / "01_demo_gone.png").write_text("a figure this run no longer makes")
    (published / "figures" / "01_demo__SEED=1_curve.png").write_text("another variant's figure")
    source = write_notebook(tmp_path / "01_demo.ipynb", SAVES)
    run.execute(source, "full")
    assert (published / "figures" / "01_demo_curve.png").read_bytes().startswith(b"\x89PNG")
    assert json.loads((published / "results" / "01_demo.json").read_text())["metrics"] == {"epochs": 50}
    assert not (published / "figures" / "01_demo_gone.png").exists()  # stale: not of this run
    assert (published / "figures" / "01_demo__SEED=1_curve.png").exists()  # another run's: kept
    assert nbformat.read(source, as_version=4).cells[-1].outputs, "the executed notebook is published too"
    assert source.stat().st_mode & 0o044 == 0o044, "readable like any other file, not mkstemp's 0600"
    assert _staging_left() == []


@pytest.mark.notebook
def test_a_notebook_shows_the_figure_file_it_published_whatever_the_callers_backend(
    tmp_path, published, monkeypatch
):
    monkeypatch.setenv("MPLBACKEND", "Agg")  # as .ci/run sets it: the kernel must still draw inline
    body = SAVES.replace('matplotlib.use("Agg")\n', "") + "\nplt.plot([0, 1])  # a figure not saved"
    source = write_notebook(tmp_path / "01_demo.ipynb", body)
    run.execute(source, "full")
    images = [
        o for o in nbformat.read(source, as_version=4).cells[-1].outputs if "image/png" in o.get("data", {})
    ]
    saved = [o for o in images if o.metadata.get(publish.FIGURE_KEY) == "01_demo_curve.png"]
    assert len(saved) == 1 and len(images) == 2, (
        "the saved figure once, as its file, and the plain plot inline"
    )
    published_png = (published / "figures" / "01_demo_curve.png").read_bytes()
    assert base64.b64decode(saved[0].data["image/png"]) == published_png


@pytest.mark.notebook
def test_a_run_whose_notebook_does_not_show_a_saved_figure_publishes_nothing(tmp_path, published):
    # a figure written beside save_figure, so that no cell displays it
    body = SAVES + "\nfig.savefig(run.figures_dir / '01_demo_hidden.png')"
    source = write_notebook(tmp_path / "01_demo.ipynb", body)
    before = source.read_text()
    with pytest.raises(RuntimeError, match=r"saved \['01_demo_hidden.png'\] but its notebook shows no image"):
        run.execute(source, "full")
    assert source.read_text() == before
    assert (published / "figures" / "01_demo_curve.png").read_text() == "earlier run"
    assert (published / "results" / "01_demo.json").read_text() == EARLIER_RESULTS
    assert not (published / "figures" / "01_demo_hidden.png").exists() and _staging_left() == []


def test_consecutive_prints_are_merged_into_one_output_per_stream():
    outputs = [nbformat.v4.new_output("stream", name="stdout", text=t) for t in ("a\n", "b\n")]
    outputs += [nbformat.v4.new_output("stream", name="stderr", text="w\n")]
    outputs += [nbformat.v4.new_output("stream", name="stdout", text="c\n")]
    merged = publish.merge_streams(outputs)
    assert [(o.name, o.text) for o in merged] == [("stdout", "a\nb\n"), ("stderr", "w\n"), ("stdout", "c\n")]


def test_the_runtimes_uninitialised_log_leaves_stderr_and_its_warnings_stay():
    notice = "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n"
    info = "I0000 00:00:1796329983.328391    4232 port.cc:153] oneDNN custom operations are on.\n"
    warning = "W0000 00:00:1796329983.328391    4232 cpu.cc:12] a real warning\n"
    outputs = [nbformat.v4.new_output("stream", name="stderr", text=notice + info)]
    outputs += [nbformat.v4.new_output("stream", name="stdout", text="printed\n" + info)]
    outputs += [nbformat.v4.new_output("stream", name="stderr", text=info + warning + "Traceback\n")]
    kept = publish.drop_runtime_log(outputs)
    assert [(o.name, o.text) for o in kept] == [
        ("stdout", "printed\n" + info),  # only stderr is the runtime's
        ("stderr", warning + "Traceback\n"),
    ]


@pytest.mark.notebook
def test_every_run_of_a_sweep_saves_its_own_results_file(tmp_path, published):
    source = write_notebook(tmp_path / "01_demo.ipynb", SAVES)
    assert run.main([str(source), "--profile", "full", "--sweep", "EPOCHS=2,3"]) == 0
    for epochs in (2, 3):
        record = json.loads((published / "results" / "01_demo" / f"EPOCHS={epochs}.json").read_text())
        assert record["metrics"] == {"epochs": epochs} and record["variant"] == {"EPOCHS": epochs}
        assert (published / "figures" / f"01_demo__EPOCHS={epochs}_curve.png").exists()
    assert (published / "results" / "01_demo.json").read_text() == EARLIER_RESULTS  # not overwritten


@pytest.mark.parametrize(
    ("sweep", "message"),
    [
        ("NOPE=1", "NOPE is not a parameter of the notebook: expected one of .'EPOCHS', 'SMOKE'."),
        ("EPOCHS=1,,2", "a sweep value is empty in 'EPOCHS=1,,2'"),
        ("EPOCHS=1,1", "a sweep value is repeated"),
    ],
)
def test_a_sweep_over_an_unknown_name_or_an_empty_value_is_refused_before_anything_runs(
    tmp_path, capsys, sweep, message
):
    source = write_notebook(tmp_path / "01_demo.ipynb", "raise RuntimeError('must not run')")
    with pytest.raises(SystemExit):
        run.main([str(source), "--profile", "full", "--sweep", sweep])
    assert re.search(message, capsys.readouterr().err)


@pytest.mark.notebook
def test_without_a_profile_the_runner_does_a_smoke_run_and_output_dir_takes_everything(tmp_path, monkeypatch):
    monkeypatch.delenv("VAE_OUTPUT_DIR", raising=False)
    source = write_notebook(tmp_path / "01_demo.ipynb", SAVES + "\nprint('smoke' if SMOKE else 'full')")
    before = source.read_text()
    out = tmp_path / "out"
    assert run.main([str(source), "--output-dir", str(out)]) == 0
    assert source.read_text() == before
    executed = nbformat.read(out / "01_demo.ipynb", as_version=4)
    assert executed.cells[-1].outputs[-1]["text"] == "smoke\n"
    assert json.loads((out / "results" / "01_demo.json").read_text())["profile"] == "smoke"
    assert (out / "figures" / "01_demo_curve.png").exists()


@pytest.mark.notebook
def test_a_relative_data_path_reaches_the_kernel_as_an_absolute_one(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("VAE_DATA_MIRROR", "relative/mirror")
    source = write_notebook(tmp_path / "01_demo.ipynb", "import os; print(os.environ['VAE_DATA_MIRROR'])")
    out = run.execute(source, "smoke", output_dir=tmp_path / "out")
    printed = nbformat.read(out, as_version=4).cells[-1].outputs[0]["text"].strip()
    assert printed == str(tmp_path / "relative" / "mirror")
    assert os.environ["VAE_DATA_MIRROR"] == "relative/mirror"  # this process's environment is restored


@pytest.mark.notebook
def test_sigterm_stops_a_full_run_and_leaves_nothing_half_written(tmp_path, published):
    source = write_notebook(
        tmp_path / "01_demo.ipynb", SAVES + "\nimport time\nprint('started', flush=True)\ntime.sleep(120)"
    )
    runner = subprocess.Popen(
        [sys.executable, "-m", "vae_utils.run", str(source), "--profile", "full"],
        env={**os.environ, "VAE_OUTPUT_DIR": str(published)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    deadline = time.monotonic() + 120
    while not any(run.STAGING_DIR.glob(f"01_demo.{runner.pid}.*/figures/01_demo_curve.png")):
        assert time.monotonic() < deadline and runner.poll() is None, "the notebook never reached its sleep"
        time.sleep(0.5)
    runner.send_signal(signal.SIGTERM)
    runner.communicate(timeout=60)
    assert runner.returncode != 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["01_demo.ipynb", "published"]  # no temp copy
    assert (published / "figures" / "01_demo_curve.png").read_text() == "earlier run"
    assert _staging_left(runner.pid) == []


@pytest.mark.notebook
def test_notebook_06_fails_loudly_on_a_diverging_learning_rate_and_publishes_nothing(
    tmp_path, monkeypatch, mirror
):
    # the reproduction of the report: LEARNING_RATE=1000 once gave a finite "test error" from NaN logits
    monkeypatch.setenv("VAE_DATA_MIRROR", str(mirror))
    monkeypatch.setenv("VAE_OFFLINE", "1")
    monkeypatch.setenv("VAE_OUTPUT_DIR", str(tmp_path))
    notebook = run.NOTEBOOKS / "06_semi_supervised_m2.ipynb"
    with pytest.raises(Exception, match="FloatingPointError"):
        run.execute(
            notebook, "smoke", output_dir=tmp_path / "notebooks", parameters={"LEARNING_RATE": 1000.0}
        )
    assert not (tmp_path / "results").exists() and not (tmp_path / "figures").exists()
    assert not (tmp_path / "notebooks" / "06_semi_supervised_m2.ipynb").exists()


def test_an_output_dir_that_cannot_be_written_is_refused_before_anything_runs(tmp_path, capsys):
    in_the_way = tmp_path / "results"
    in_the_way.write_text("")
    with pytest.raises(SystemExit):
        run.main([str(run.notebooks()[0]), "--output-dir", str(in_the_way / "out")])
    assert "expected a writable directory" in capsys.readouterr().err
    assert [p.name for p in tmp_path.iterdir()] == ["results"], "nothing may be written anywhere else"
