"""A run publishes nothing unless it finished: diverged, stale, interrupted or failed runs leave no trace."""

import base64
import json
import os
import re
import signal
import subprocess
import sys
import time

import keras
import nbformat
import numpy as np
import pytest

from vae_utils import data, losses, m2, models, publish, repro, run

from .conftest import write_notebook

SHAPE = (4, 4)


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


@pytest.fixture
def published(tmp_path, monkeypatch):
    """Where runs publish (``$VAE_OUTPUT_DIR``), with a figure and a metrics file of an earlier run."""
    base = tmp_path / "published"
    (base / "figures").mkdir(parents=True)
    (base / "results").mkdir()
    (base / "figures" / "01_demo_curve.png").write_text("earlier run")
    (base / "results" / "01_demo.json").write_text("earlier run")
    monkeypatch.setenv("VAE_OUTPUT_DIR", str(base))
    return base


def _staging_left():
    return [p for p in run.STAGING_DIR.glob("01_demo.*")] if run.STAGING_DIR.exists() else []


# --- the runner -------------------------------------------------------------------------------------


@pytest.mark.notebook
def test_a_run_that_fails_at_its_last_cell_publishes_none_of_its_figures_or_metrics(tmp_path, published):
    source = write_notebook(tmp_path / "01_demo.ipynb", SAVES + "\nraise RuntimeError('last cell failed')")
    before = source.read_text()
    with pytest.raises(Exception, match="last cell failed"):
        run.execute(source, "full")
    assert source.read_text() == before
    assert (published / "figures" / "01_demo_curve.png").read_text() == "earlier run"
    assert (published / "results" / "01_demo.json").read_text() == "earlier run"
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
    assert (published / "results" / "01_demo.json").read_text() == "earlier run"
    assert not (published / "figures" / "01_demo_hidden.png").exists() and _staging_left() == []


def test_consecutive_prints_are_merged_into_one_output_per_stream():
    outputs = [nbformat.v4.new_output("stream", name="stdout", text=t) for t in ("a\n", "b\n")]
    outputs += [nbformat.v4.new_output("stream", name="stderr", text="w\n")]
    outputs += [nbformat.v4.new_output("stream", name="stdout", text="c\n")]
    merged = publish.merge_streams(outputs)
    assert [(o.name, o.text) for o in merged] == [("stdout", "a\nb\n"), ("stderr", "w\n"), ("stdout", "c\n")]


@pytest.mark.notebook
def test_every_run_of_a_sweep_saves_its_own_results_file(tmp_path, published):
    source = write_notebook(tmp_path / "01_demo.ipynb", SAVES)
    assert run.main([str(source), "--profile", "full", "--sweep", "EPOCHS=2,3"]) == 0
    for epochs in (2, 3):
        record = json.loads((published / "results" / "01_demo" / f"EPOCHS={epochs}.json").read_text())
        assert record["metrics"] == {"epochs": epochs} and record["variant"] == {"EPOCHS": epochs}
        assert (published / "figures" / f"01_demo__EPOCHS={epochs}_curve.png").exists()
    assert (published / "results" / "01_demo.json").read_text() == "earlier run"  # not overwritten


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
    while not any(p.name == "01_demo_curve.png" for p in run.STAGING_DIR.rglob("*.png")):
        assert time.monotonic() < deadline and runner.poll() is None, "the notebook never reached its sleep"
        time.sleep(0.5)
    runner.send_signal(signal.SIGTERM)
    runner.communicate(timeout=60)
    assert runner.returncode != 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["01_demo.ipynb", "published"]  # no temp copy
    assert (published / "figures" / "01_demo_curve.png").read_text() == "earlier run"
    assert _staging_left() == []


# --- metrics and checkpoints ----------------------------------------------------------------------------


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


def _vae(seed=0):
    keras.utils.set_random_seed(seed)
    return models.VAE(
        models.dense_encoder(SHAPE, 2, hidden=(8,)), models.dense_decoder(2, SHAPE, hidden=(8,))
    )


def _binary(n=40):
    return (np.random.default_rng(0).random((n, *SHAPE)) < 0.5).astype("float32")


def test_a_diverging_fit_stops_loudly_and_leaves_nothing_to_load_or_resume(tmp_path):
    ckpt = repro.Checkpoints(tmp_path, {"learning_rate": 1e30})
    model = _vae()
    model.compile(optimizer=keras.optimizers.SGD(1e30))
    x = _binary()
    with pytest.raises(FloatingPointError, match="epoch 1 ended with non-finite values"):
        model.fit(x, validation_data=(x,), epochs=3, batch_size=10, verbose=0, callbacks=ckpt.callbacks())
    assert not ckpt.state_dir.exists() and not ckpt.resuming and not ckpt.complete


def test_a_checkpoint_is_keyed_by_backend_code_and_upstream_training(tmp_path, monkeypatch):
    monkeypatch.setenv("VAE_OUTPUT_DIR", str(tmp_path))
    r = repro.Run("99_test", seed=0, smoke=True)

    def train_a():
        return 1

    def train_b():
        return 2

    upstream = r.checkpoints("m1", {"epochs": 3}).bind(train_a)
    other_upstream = r.checkpoints("m1", {"epochs": 4}).bind(train_a)
    a = r.checkpoints("m1m2", {"epochs": 5}, upstream=(upstream,)).bind(train_a)
    assert a.config["backend"] == keras.backend.backend()
    assert a.config["upstream"] == {"m1": upstream.key}
    assert r.checkpoints("m1m2", {"epochs": 5}, upstream=(upstream,)).bind(train_a).key == a.key
    assert r.checkpoints("m1m2", {"epochs": 5}, upstream=(upstream,)).bind(train_b).key != a.key
    assert r.checkpoints("m1m2", {"epochs": 5}, upstream=(other_upstream,)).bind(train_a).key != a.key
    monkeypatch.setattr(keras.backend, "backend", lambda: "torch")
    assert r.checkpoints("m1m2", {"epochs": 5}, upstream=(upstream,)).bind(train_a).key != a.key


def test_a_results_file_says_whether_each_training_ran_resumed_or_was_loaded(tmp_path, monkeypatch):
    monkeypatch.setenv("VAE_OUTPUT_DIR", str(tmp_path))
    monkeypatch.delenv(run.STAGING_ENV, raising=False)
    x = _binary()
    r = repro.Run("99_test", seed=0, smoke=True)
    ckpt = r.checkpoints("vae", {"epochs": 4})
    model = _vae()
    model.compile(optimizer=keras.optimizers.Adam(1e-2))

    class Interrupt(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 1:
                raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        model.fit(
            x,
            validation_data=(x,),
            epochs=4,
            batch_size=10,
            verbose=0,
            callbacks=[*ckpt.callbacks(), Interrupt()],
        )
    r = repro.Run("99_test", seed=0, smoke=True)  # the notebook run again
    ckpt = r.checkpoints("vae", {"epochs": 4})
    model = _vae()
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    model.fit(x, validation_data=(x,), epochs=4, batch_size=10, verbose=0, callbacks=ckpt.callbacks())
    ckpt.finish(model)
    record = json.loads(r.save_metrics({"done": 1}).read_text())["trainings"]["vae"]
    assert record.pop("seconds_per_epoch") > 0
    assert record == {
        "checkpoint": ckpt.key,
        "status": "resumed after epoch 2",
        "resumed_after_epoch": 2,
        "epochs_logged": 4,
    }
    again = repro.Run("99_test", seed=0, smoke=True).checkpoints("vae", {"epochs": 4})
    assert again.complete and again.record()["status"] == "loaded a finished training"


# --- public functions that returned a wrong number instead of an error ------------------------------------


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (
            lambda: losses.gaussian_kl(np.zeros((4, 1)), np.zeros((4, 3))),
            ValueError,
            r"\(4, 1\) and \(4, 3\)",
        ),
        (lambda: data.BinarizedBatches(np.zeros((5, 2)), 0, seed=0), ValueError, "integer >= 1, found 0"),
        (lambda: m2.SemiSupervisedVAE(None, None, None, 10, 1, 1), TypeError, "found NoneType"),
    ],
    ids=["KL of shapes that broadcast", "batches of size 0", "M2 without sub-models"],
)
def test_training_code_refuses_inputs_it_would_misuse(call, error, message):
    with pytest.raises(error, match=message):
        call()


def test_labelled_split_refuses_one_hot_labels():
    from vae_utils import data

    y = np.eye(10)[np.arange(100) % 10]
    with pytest.raises(
        ValueError, match=r"integer class labels of shape \(n,\), found float64 of shape \(100, 10\)"
    ):
        data.labelled_split(y, 10, seed=0)


def test_elbo_and_iwae_refuse_8_bit_pixels():
    from vae_utils import evaluate

    x = np.full((4, *SHAPE), 255, np.uint8)
    for estimate in (evaluate.elbo, evaluate.iwae_log_likelihood):
        with pytest.raises(ValueError, match=r"pixel values in \[0, 1\].*found uint8 values in \[255, 255\]"):
            estimate(_vae(), x)


@pytest.mark.parametrize(
    ("values", "dims", "message"),
    [([], 784, "found an empty array"), ([-90.0, np.nan], 784, "found NaN"), ([-90.0], 784.5, "784.5")],
)
def test_bits_per_dim_refuses_empty_or_non_finite_input_and_fractional_dims(values, dims, message):
    from vae_utils import evaluate

    with pytest.raises(ValueError, match=message):
        evaluate.bits_per_dim(np.asarray(values), dims)


def test_image_grid_refuses_zero_columns():
    from vae_utils import plotting

    with pytest.raises(ValueError, match="n_cols must be an integer >= 1, found 0"):
        plotting.image_grid(np.zeros((3, 4, 4)), n_cols=0)


def test_a_vae_refuses_an_encoder_and_decoder_that_do_not_fit():
    encoder = models.dense_encoder(SHAPE, 2, hidden=(8,))
    with pytest.raises(ValueError, match="encoder outputs 2-D codes but the decoder takes 3-D codes"):
        models.VAE(encoder, models.dense_decoder(3, SHAPE, hidden=(8,)))
    with pytest.raises(ValueError, match=r"decoder must output \(4, 4\).*found \(5, 5\)"):
        models.VAE(encoder, models.dense_decoder(2, (5, 5), hidden=(8,)))
    rgb = models.conv_encoder((8, 8, 3), 2)
    with pytest.raises(ValueError, match=r"was it built with likelihood='logistic'"):
        models.VAE(rgb, models.conv_decoder(2, (8, 8, 3)), likelihood="logistic")


# --- downloads and the cache ---------------------------------------------------------------------------


def test_a_missing_file_or_refused_connection_names_the_file_and_the_url(tmp_path, http_files):
    from vae_utils.data import DataError, files

    url = http_files.url(tmp_path / "served" / "toy.npz")
    cache = tmp_path / "cache"
    with pytest.raises(DataError, match=rf"could not download toy.npz from {url} after 3 attempts \(404"):
        files._download(url, cache / "toy.npz", "0" * 64)
    with pytest.raises(DataError, match=r"could not download toy.npz from http://127.0.0.1:9/toy.npz"):
        files._download("http://127.0.0.1:9/toy.npz", cache / "toy.npz", "0" * 64)
    assert list(cache.iterdir()) == []


def test_a_download_clears_stale_partial_files_and_caches_group_readable_files(tmp_path, http_files):
    import hashlib

    from vae_utils.data import files

    served = tmp_path / "served"
    served.mkdir()
    (served / "toy.npz").write_bytes(b"toy bytes")
    cache = tmp_path / "cache"
    cache.mkdir()
    stale, fresh = cache / ".toy.npz.killed.part", cache / f".toy.npz.{os.getpid()}.running.part"
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    killed = cache / f".toy.npz.{int(dead.stdout)}.sigterm.part"  # just written, by a process now gone
    killed.mkdir()
    for path in (stale, fresh):
        path.write_bytes(b"half")
    two_hours_ago = time.time() - 7200
    os.utime(stale, (two_hours_ago, two_hours_ago))
    old_mask = os.umask(0o022)
    try:
        files._download(
            http_files.url(served / "toy.npz"), cache / "toy.npz", hashlib.sha256(b"toy bytes").hexdigest()
        )
    finally:
        os.umask(old_mask)
    assert sorted(p.name for p in cache.iterdir()) == [fresh.name, "toy.npz"]  # a live download is kept
    assert (cache / "toy.npz").stat().st_mode & 0o777 == 0o644


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


def test_a_web_page_served_as_frey_faces_and_a_file_as_the_cache_are_named_errors(tmp_path):
    from vae_utils.data import faces, files

    page = tmp_path / "frey_rawface.mat"
    page.write_text("<html><body>Not Found</body></html>")
    with pytest.raises(data.DataError, match="not a readable MATLAB .mat file.*frey_rawface.mat"):
        faces._frey_from_mat(page)
    in_the_way = tmp_path / "cache"
    in_the_way.write_text("")
    with pytest.raises(data.DataError, match="expected a writable directory. Set VAE_DATA_DIR"):
        files._clear_stale(in_the_way / "sub", "mnist.npz")


def test_an_output_dir_that_cannot_be_written_is_refused_before_anything_runs(tmp_path, capsys):
    in_the_way = tmp_path / "results"
    in_the_way.write_text("")
    with pytest.raises(SystemExit):
        run.main([str(run.notebooks()[0]), "--output-dir", str(in_the_way / "out")])
    assert "expected a writable directory" in capsys.readouterr().err
    assert [p.name for p in tmp_path.iterdir()] == ["results"], "nothing may be written anywhere else"
