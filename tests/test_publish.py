"""Publishing that cannot be fooled: the profile is not a parameter, a publish is a transaction, sweeps name
their runs unambiguously, provenance is the run's own, and dead runs leave nothing behind for long."""

import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest

from vae_utils import compare, publish, repro, run

from .conftest import write_notebook

SAVES = """
import matplotlib.pyplot as plt
from vae_utils import repro
run = repro.Run("01_demo", seed=0, smoke=SMOKE)
run.save_figure(plt.figure(), "curve")
run.save_metrics({"epochs": EPOCHS})
"""


PARAMS = "SMOKE = False\nEPOCHS = 50\nA = 0\nB = 0"


def _snapshot(folder):
    return {p.relative_to(folder): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


# --- the profile is not a parameter ----------------------------------------------------------------------


def test_sweeping_smoke_is_refused_before_anything_runs(tmp_path, capsys, published):
    source = write_notebook(tmp_path / "01_demo.ipynb", "raise RuntimeError('must not run')", PARAMS)
    before = _snapshot(published)
    with pytest.raises(SystemExit):
        run.main([str(source), "--profile", "full", "--sweep", "SMOKE=True"])
    assert "SMOKE is set by the profile (--profile smoke or full), not by a sweep" in capsys.readouterr().err
    assert _snapshot(published) == before


@pytest.mark.notebook
def test_a_full_run_whose_notebook_saved_smoke_results_publishes_nothing(tmp_path, published):
    # a notebook that ignores the profile it is run in
    source = write_notebook(tmp_path / "01_demo.ipynb", SAVES.replace("smoke=SMOKE", "smoke=True"), PARAMS)
    before = _snapshot(published)
    with pytest.raises(RuntimeError, match=r"results of profile 'smoke' from a full run"):
        run.execute(source, "full")
    assert _snapshot(published) == before


def test_a_results_file_is_never_replaced_by_one_of_another_profile(tmp_path):
    staged, base = tmp_path / "staged", tmp_path / "base"
    (staged / "results").mkdir(parents=True)
    (base / "results").mkdir(parents=True)
    (staged / "results" / "01_demo.json").write_text(json.dumps({"profile": "smoke"}))
    (base / "results" / "01_demo.json").write_text(json.dumps({"profile": "full"}))
    with pytest.raises(RuntimeError, match="would replace a full run's results with a smoke run's"):
        publish.check_profiles(staged, base, "smoke")


@pytest.mark.parametrize("values", ["0,00", "0,-0", "1,0x1", "1,1.0", "True,1"])
def test_sweep_values_that_name_the_same_run_are_refused(values):
    with pytest.raises(ValueError, match="name the same run"):
        run.parse_sweep([f"A={values}"], {"A", "SMOKE"})


def test_sweep_values_are_normalised_before_they_name_a_run():
    assert run.parse_sweep(["A=007,0x10", "B=1e3"], {"A", "B"}) == [
        {"A": 7, "B": 1000.0},
        {"A": 16, "B": 1000.0},
    ]
    assert run.variant_tag({"A": 7, "B": 1000.0}) == "A=7_B=1000.0"


# --- a publish is a transaction ---------------------------------------------------------------------------


def _staged(tmp_path, names=("01_demo_curve.png", "01_demo_new.png")):
    staging = tmp_path / "staging"
    (staging / "figures").mkdir(parents=True)
    (staging / "results").mkdir()
    for name in names:
        (staging / "figures" / name).write_text("new run")
    (staging / "results" / "01_demo.json").write_text(json.dumps({"profile": "full"}))
    (staging / "run.json").write_text(json.dumps({"figure_prefix": "01_demo"}))
    notebook = tmp_path / "executed.ipynb"
    notebook.write_text("executed")
    return staging, notebook


def test_a_publish_that_fails_half_way_leaves_the_previous_publication_exactly_as_it_was(
    tmp_path, published, monkeypatch
):
    (published / "figures" / "01_demo_gone.png").write_text("a figure the new run does not make")
    target = tmp_path / "01_demo.ipynb"
    target.write_text("published notebook")
    before = _snapshot(published)
    staging, notebook = _staged(tmp_path)
    real_replace, calls = os.replace, []

    def failing_replace(src, dst):
        calls.append(dst)
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        return real_replace(src, dst)

    monkeypatch.setattr(publish.os, "replace", failing_replace)
    with pytest.raises(OSError, match="No space left"):
        publish.publish(staging, published, notebook, target, full=True)
    monkeypatch.undo()
    assert _snapshot(published) == before, "nothing published was removed or replaced"
    assert target.read_text() == "published notebook"
    leftovers = [p.name for p in published.rglob(".*")] + [p.name for p in tmp_path.glob(".*")]
    assert not leftovers, leftovers


def test_a_publish_to_another_filesystem_replaces_the_previous_one(tmp_path):
    shm = Path("/dev/shm")
    if not shm.is_dir() or os.stat(shm).st_dev == os.stat(tmp_path).st_dev:
        pytest.fail("this test needs /dev/shm on a filesystem other than the temporary folder's")
    with tempfile.TemporaryDirectory(dir=shm) as other:
        base = Path(other)
        (base / "figures").mkdir()
        (base / "figures" / "01_demo_gone.png").write_text("earlier run")
        staging, notebook = _staged(tmp_path)
        publish.publish(staging, base, notebook, base / "01_demo.ipynb", full=True)
        assert sorted(p.name for p in (base / "figures").iterdir()) == [
            "01_demo_curve.png",
            "01_demo_new.png",
        ]
        assert (base / "01_demo.ipynb").read_text() == "executed"
        assert json.loads((base / "results" / "01_demo.json").read_text())["profile"] == "full"


def test_a_run_removes_only_its_own_variants_stale_figures(tmp_path):
    base = tmp_path / "base"
    (base / "figures").mkdir(parents=True)
    keep = ["01_demo__A=1_B=2_curve.png", "01_demo__A=10_curve.png", "01_demo_curve.png"]
    for name in [*keep, "01_demo__A=1_old.png", "01_demo__A=1_explorer_old.json"]:
        (base / "figures" / name).write_text("earlier")
    staging, notebook = _staged(tmp_path, names=("01_demo__A=1_curve.png",))
    (staging / "run.json").write_text(json.dumps({"figure_prefix": "01_demo__A=1"}))
    publish.publish(staging, base, notebook, tmp_path / "01_demo__A=1.ipynb", full=True)
    assert sorted(p.name for p in (base / "figures").iterdir()) == sorted([*keep, "01_demo__A=1_curve.png"])


# --- dead runs leave nothing behind for long ------------------------------------------------------------


def _dead_pid():
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_the_next_run_clears_what_killed_runs_left_and_keeps_what_live_ones_use(tmp_path):
    dead, alive = _dead_pid(), os.getpid()
    staging_root = tmp_path / "staging"
    for pid in (dead, alive):
        (staging_root / f"01_demo.{pid}.abc").mkdir(parents=True)
        (tmp_path / f".01_demo.{pid}.abc.ipynb").write_text("{}")
    (tmp_path / ".01_demo.ipynb.bak").write_text("not the runner's")
    publish.clear_leftovers(staging_root, tmp_path)
    assert sorted(p.name for p in staging_root.iterdir()) == [f"01_demo.{alive}.abc"]
    assert {p.name for p in tmp_path.glob(".*")} == {".01_demo.ipynb.bak", f".01_demo.{alive}.abc.ipynb"}


# --- provenance is the run's own -------------------------------------------------------------------------


@pytest.fixture
def demo_run(tmp_path, monkeypatch):
    monkeypatch.setenv("VAE_OUTPUT_DIR", str(tmp_path))
    monkeypatch.delenv(run.STAGING_ENV, raising=False)
    monkeypatch.delenv(run.VARIANT_ENV, raising=False)
    return repro.Run("99_test", seed=0, smoke=True)


def test_save_metrics_cannot_override_the_runs_profile_seed_or_command(demo_run):
    with pytest.raises(TypeError):
        demo_run.save_metrics({"x": 1.0}, profile="full", seed=123)
    assert not (demo_run.results_dir).exists()


@pytest.mark.parametrize(
    ("metrics", "message"),
    [
        ({1: 2.0, "1": 3.0}, r"metric key 1 is not a string"),
        ({"a": {2: 1.0}}, r"metric key a.2 is not a string"),
    ],
)
def test_metric_keys_are_strings(demo_run, metrics, message):
    with pytest.raises(ValueError, match=message):
        demo_run.save_metrics(metrics)
    assert not demo_run.results_dir.exists()


@pytest.mark.parametrize("name", ["../escaped_run", "a/b", "", ".hidden", "01 demo"])
def test_a_run_name_cannot_leave_results(tmp_path, monkeypatch, name):
    monkeypatch.setenv("VAE_OUTPUT_DIR", str(tmp_path))
    with pytest.raises(ValueError, match="a run's name is a notebook's name"):
        repro.Run(name, seed=0, smoke=True)


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"errors": [8.0, 9.0, 9.1], "mean": 1.5, "std": 0.6}, r"mean 1.5 is not the mean of its errors"),
        ({"errors": [250.0], "mean": 250.0, "std": 0.0}, r"test errors in \[0, 100\] %"),
        ({"errors": [-3.0], "mean": -3.0, "std": 0.0}, r"test errors in \[0, 100\] %"),
    ],
)
def test_compare_refuses_means_that_are_not_their_values_and_errors_outside_0_100(tmp_path, entry, message):
    record = {"profile": "full", "metrics": {"cnn": {"100": entry}}}
    (tmp_path / "07_baselines_and_comparison.json").write_text(json.dumps(record))
    with pytest.raises(ValueError, match=message):
        compare.collect(tmp_path)


def test_the_error_names_the_file(tmp_path):
    record = {"profile": "full", "metrics": {"cnn": {"100": {"errors": [5.0], "mean": 6.0, "std": 0.0}}}}
    (tmp_path / "07_baselines_and_comparison.json").write_text(json.dumps(record))
    with pytest.raises(ValueError, match=re.escape(str(tmp_path / "07_baselines_and_comparison.json"))):
        compare.collect(tmp_path)


# --- public functions refuse what they cannot use, naming it ------------------------------------------


def test_bits_per_dim_refuses_negative_log_likelihoods_passed_as_log_likelihoods():
    from vae_utils import evaluate

    with pytest.raises(ValueError, match=r"found 50: negative log-likelihoods \(losses\) passed by mistake"):
        evaluate.bits_per_dim([50.0, 20.0], 784)
    assert evaluate.bits_per_dim([-50.0, -20.0], 784) == pytest.approx(35 / (784 * np.log(2)))


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_a_path_between_codes_refuses_nan_and_infinity(bad):
    from vae_utils import latent

    for path in (latent.lerp, latent.slerp):
        with pytest.raises(ValueError, match="z1 holds NaN or infinite values"):
            path(np.zeros(3), np.array([1.0, bad, 0.0]), 5)


def test_image_grids_refuse_nan_pixels_and_8_bit_values_they_would_draw_white():
    import matplotlib.pyplot as plt

    from vae_utils import plotting

    with pytest.raises(ValueError, match=r"integers up to 255 \(8-bit images\? divide them by 255\)"):
        plotting.image_grid(np.full((2, 4, 4), 255, dtype=np.uint8))
    with pytest.raises(ValueError, match="NaN or infinite pixels"):
        plotting.image_grid(np.full((2, 4, 4), np.nan))
    with pytest.raises(ValueError, match="n must be an integer >= 1, found 0"):
        plotting.latent_manifold(lambda z: np.zeros((len(z), 4, 4)), n=0, image_shape=(4, 4))
    plt.close("all")


def test_a_labelled_split_of_no_labels_is_refused_with_its_reason():
    from vae_utils import data

    with pytest.raises(ValueError, match="y is empty"):
        data.labelled_split(np.array([], dtype=int), 10, seed=0)


@pytest.mark.parametrize("kind", ["pandas", "jax"])
def test_nan_inside_a_pandas_series_or_a_jax_array_is_refused_naming_the_key(demo_run, kind):
    values = [1.0, np.nan]
    if kind == "pandas":
        import pandas as pd

        array = pd.Series(values)
    else:
        import jax.numpy as jnp  # installed with the package's cpu extra, as in CI

        array = jnp.array(values)
    with pytest.raises(ValueError, match=r"metric model.errors\[1\] is nan"):
        demo_run.save_metrics({"model": {"errors": array}})
