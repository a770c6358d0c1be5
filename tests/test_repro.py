"""Seeding, and the metrics and figures a run leaves behind."""

import json
import math

import keras
import matplotlib.pyplot as plt
import numpy as np
import pytest
from keras import ops

from vae_utils import repro, run


def test_seed_everything_makes_numpy_and_keras_draws_repeat():
    def draw():  # the legacy global NumPy state is what seeding must reach
        return np.random.rand(3), ops.convert_to_numpy(keras.random.normal((3,)))  # noqa: NPY002

    repro.seed_everything(11)
    first = draw()
    repro.seed_everything(11)
    second = draw()
    np.testing.assert_array_equal(first[0], second[0])
    np.testing.assert_array_equal(first[1], second[1])


def test_save_metrics_records_provenance(tmp_path, monkeypatch):
    monkeypatch.setenv("VAE_OUTPUT_DIR", str(tmp_path))
    run = repro.Run("99_test", seed=4, smoke=True)
    path = run.save_metrics({"test_elbo": np.float32(-95.5), "nested": {"k": 5000}})
    assert path == tmp_path / "results" / "99_test.json"
    record = json.loads(path.read_text())
    assert record["metrics"] == {"test_elbo": -95.5, "nested": {"k": 5000}}
    assert record["profile"] == "smoke" and record["seed"] == 4 and record["wall_time_s"] >= 0
    assert record["versions"]["keras"] == keras.__version__
    assert record["hardware"]["cpu_count"] >= 1
    assert record["reproduce"] == "python -m vae_utils.run notebooks/99_test.ipynb --profile smoke"


@pytest.mark.parametrize("bad", [math.nan, math.inf])
def test_save_metrics_refuses_non_finite_values_and_writes_nothing(tmp_path, monkeypatch, bad):
    monkeypatch.setenv("VAE_OUTPUT_DIR", str(tmp_path))
    run = repro.Run("99_test", seed=0, smoke=True)
    with pytest.raises(ValueError, match=rf"metric model.test_elbo is {bad}: expected a finite number"):
        run.save_metrics({"model": {"test_elbo": bad}})
    assert not (tmp_path / "results").exists() or list((tmp_path / "results").iterdir()) == []


def test_smoke_and_full_runs_write_to_different_places(monkeypatch):
    monkeypatch.delenv("VAE_OUTPUT_DIR", raising=False)
    smoke = repro.Run("99_test", seed=0, smoke=True)
    full = repro.Run("99_test", seed=0, smoke=False)
    assert smoke.results_dir == repro.ROOT / "build" / "smoke" / "results"
    assert full.results_dir == repro.ROOT / "results" and full.figures_dir == repro.ROOT / "figures"


def test_save_figure_writes_a_png(tmp_path, monkeypatch):
    monkeypatch.setenv("VAE_OUTPUT_DIR", str(tmp_path))
    fig, ax = plt.subplots()
    ax.plot([0, 1])
    assert (
        repro.Run("99_test", seed=0, smoke=True).save_figure(fig, "line") is None
    )  # no repr under the figure
    path = tmp_path / "figures" / "99_test_line.png"
    assert path.read_bytes()[:4] == b"\x89PNG"
    assert [p.name for p in path.parent.iterdir()] == ["99_test_line.png"]
    assert not plt.fignum_exists(fig.number)  # closed: an inline backend does not show it a second time


@pytest.mark.parametrize("stem", ["", None, 5, "../x", "a/b", "curve png"])
def test_save_figure_refuses_a_stem_that_is_not_a_plain_file_name(tmp_path, monkeypatch, stem):
    monkeypatch.setenv("VAE_OUTPUT_DIR", str(tmp_path))
    with pytest.raises(ValueError, match="a figure's stem is letters, digits"):
        repro.Run("99_test", seed=0, smoke=True).save_figure(plt.figure(), stem)
    plt.close("all")
    assert not (tmp_path / "figures").exists() or not any((tmp_path / "figures").iterdir())


def test_a_run_of_a_sweep_saves_its_own_metrics_file(tmp_path, monkeypatch):
    monkeypatch.setenv("VAE_OUTPUT_DIR", str(tmp_path))
    run = repro.Run("05_test", seed=1, smoke=False, variant={"N_LABELLED": 100, "SEED": 1})
    path = run.save_metrics({"test_error": 3.3})
    assert path == tmp_path / "results" / "05_test" / "N_LABELLED=100_SEED=1.json"
    record = json.loads(path.read_text())
    assert record["variant"] == {"N_LABELLED": 100, "SEED": 1}
    assert record["reproduce"] == (
        "python -m vae_utils.run notebooks/05_test.ipynb --profile full --sweep N_LABELLED=100 --sweep SEED=1"
    )
    run.save_figure(plt.figure(), "curves")
    assert [p.name for p in run.figures_dir.iterdir()] == ["05_test__N_LABELLED=100_SEED=1_curves.png"]


def test_save_metrics_refuses_a_non_finite_value_inside_an_array_naming_it(tmp_path, monkeypatch):
    monkeypatch.setenv("VAE_OUTPUT_DIR", str(tmp_path))
    monkeypatch.delenv(run.STAGING_ENV, raising=False)
    monkeypatch.delenv(run.VARIANT_ENV, raising=False)
    r = repro.Run("99_test", seed=0, smoke=True)
    with pytest.raises(ValueError, match=r"metric m2.errors\[1\] is nan"):
        r.save_metrics({"m2": {"errors": np.array([3.0, np.nan])}})
    assert not (tmp_path / "results").exists()
    path = r.save_metrics({"errors": np.array([3.0, 4.5])})
    assert json.loads(path.read_text())["metrics"] == {"errors": [3.0, 4.5]}
