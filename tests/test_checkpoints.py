"""Resumable training: an interrupted fit resumes from its last epoch, keeps its best epoch and its log."""

import importlib
import importlib.util
import json
from pathlib import Path

import keras
import numpy as np
import pytest

from vae_utils import data, evaluate, m2, models, repro, run

K, SHAPE = 3, (4, 4)


class _Interrupt(keras.callbacks.Callback):
    """Fails like a killed run once ``after`` epochs have finished (and been checkpointed)."""

    def __init__(self, after):
        super().__init__()
        self.after = after

    def on_epoch_end(self, epoch, logs=None):
        if epoch + 1 == self.after:
            raise KeyboardInterrupt(f"interrupted after epoch {epoch + 1}")


def _setup(seed=0):
    keras.utils.set_random_seed(seed)
    model = m2.SemiSupervisedVAE(
        m2.classifier(SHAPE, K, hidden=(8,)),
        m2.encoder(SHAPE, K, 2, hidden=(8,)),
        m2.decoder(2, K, SHAPE, hidden=(8,)),
        n_classes=K,
        n_labelled=9,
        n_unlabelled=51,
        alpha=1.0,
        seed=seed,
    )
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    rng = np.random.default_rng(seed)
    x = rng.random((60, *SHAPE)).astype("float32")
    y = np.arange(60) % K
    batches = data.SemiSupervisedBatches(x[:9], y[:9], x[9:], 3, 10, seed=seed, n_classes=K)
    return model, batches, evaluate.ClassificationError(x[:30], y[:30])


def test_an_interrupted_fit_resumes_and_logs_every_epoch_once(tmp_path):
    ckpt = repro.Checkpoints(tmp_path, {"epochs": 5}, monitor="val_error")
    model, batches, error = _setup()
    with pytest.raises(KeyboardInterrupt):
        model.fit(batches, epochs=5, verbose=0, callbacks=[error, *ckpt.callbacks(), _Interrupt(3)])
    assert ckpt.resuming and not ckpt.complete
    assert len(ckpt.history()["val_error"]) == 3
    saved = json.loads((ckpt.directory / "config.json").read_text())
    assert saved == {"epochs": 5}

    fresh, batches, error = _setup()  # a new process would rebuild the model from scratch
    history = fresh.fit(batches, epochs=5, verbose=0, callbacks=[error, *ckpt.callbacks()])
    assert len(history.history["loss"]) == 2, "the resumed fit must run only the two missing epochs"
    log = ckpt.finish(fresh)
    assert len(log["val_error"]) == 5 and len(log["loss"]) == 5
    assert ckpt.complete and not ckpt.resuming
    # the weights now in the model are those of the best logged epoch
    best = min(log["val_error"])
    assert 100 * (1 - evaluate.accuracy(fresh, error.x, error.y)) == pytest.approx(best, abs=1e-6)


def test_a_new_config_starts_afresh_and_a_finished_run_is_left_as_it_is(tmp_path):
    a = repro.Checkpoints(tmp_path, {"epochs": 2}, monitor="val_error")
    b = repro.Checkpoints(tmp_path, {"epochs": 3}, monitor="val_error")
    assert a.directory != b.directory
    model, batches, error = _setup()
    model.fit(batches, epochs=2, verbose=0, callbacks=[error, *a.callbacks()])
    a.finish(model)
    files = {p: p.read_bytes() for p in a.state_dir.iterdir()}
    assert a.callbacks(epochs=2) == [], "a finished run is loaded, not trained again"
    assert {p: p.read_bytes() for p in a.state_dir.iterdir()} == files, "a finished run's files must stay"
    with pytest.raises(ValueError, match="holds 2 epochs and this run asks for 1"):
        a.callbacks(epochs=1)


def test_a_finished_training_asked_for_more_epochs_continues_where_it_stopped(tmp_path):
    ckpt = repro.Checkpoints(tmp_path, {"learning_rate": 1e-2}, monitor="val_error")
    model, batches, error = _setup()
    model.fit(batches, epochs=2, verbose=0, callbacks=[error, *ckpt.callbacks(data=batches, epochs=2)])
    ckpt.finish(model)
    model, batches, error = _setup()
    more = ckpt.callbacks(data=batches, epochs=4)
    assert more and ckpt.status == "resumed after epoch 2"
    history = model.fit(batches, epochs=4, verbose=0, callbacks=[error, *more])
    assert len(history.history["loss"]) == 2 and len(ckpt.finish(model)["loss"]) == 4


def test_finish_without_best_weights_says_what_is_missing(tmp_path):
    ckpt = repro.Checkpoints(tmp_path, {}, monitor="val_error")
    model, _, _ = _setup()
    with pytest.raises(FileNotFoundError, match="val_error"):
        ckpt.finish(model)
    with pytest.raises(ValueError, match="mode"):
        repro.Checkpoints(tmp_path, {}, mode="lowest")


def test_sample_gaussian_draws_around_the_mean_with_the_given_spread():
    stats = np.concatenate([np.full((20_000, 2), 3.0), np.log(np.full((20_000, 2), 4.0))], axis=1)
    z = data.sample_gaussian(stats, np.random.default_rng(0))
    assert z.shape == (20_000, 2) and z.dtype == np.float32
    np.testing.assert_allclose(z.mean(axis=0), 3.0, atol=0.05)
    np.testing.assert_allclose(z.std(axis=0), 2.0, atol=0.05)  # exp(0.5 * log 4)
    with pytest.raises(ValueError, match="even last dimension"):
        data.sample_gaussian(np.zeros((4, 3)), np.random.default_rng(0))


def test_batches_apply_a_transform_to_every_draw_and_depend_only_on_seed_epoch_and_index():
    stats = np.concatenate([np.zeros((40, 2)), np.zeros((40, 2))], axis=1).astype("float32")
    y = np.arange(10) % 2
    batches = data.SemiSupervisedBatches(
        stats[:10], y, stats[10:], 5, 10, seed=0, n_classes=2, transform=data.sample_gaussian
    )
    first, again = batches[0]["x_unlabelled"], batches[1]["x_unlabelled"]
    assert first.shape == (10, 2) and not np.allclose(first, again), "each draw must be a fresh sample"
    np.testing.assert_array_equal(first, batches[0]["x_unlabelled"])
    batches.on_epoch_end()
    assert not np.allclose(first, batches[0]["x_unlabelled"]), "a new epoch draws anew"
    resumed = data.SemiSupervisedBatches(
        stats[:10], y, stats[10:], 5, 10, seed=0, n_classes=2, transform=data.sample_gaussian
    )
    resumed.epoch = 1
    np.testing.assert_array_equal(resumed[1]["x_unlabelled"], batches[1]["x_unlabelled"])
    with pytest.raises(TypeError, match="transform must be a function"):
        data.SemiSupervisedBatches(stats[:10], y, stats[10:], 5, 10, seed=0, transform="gaussian")


def test_a_complete_run_loads_into_a_fresh_vae_without_training(tmp_path):
    def vae():
        keras.utils.set_random_seed(0)
        model = models.VAE(
            models.dense_encoder(SHAPE, 2, hidden=(8,)), models.dense_decoder(2, SHAPE, hidden=(8,))
        )
        model.compile(optimizer=keras.optimizers.Adam(1e-2))
        return model

    x = (np.random.default_rng(0).random((40, *SHAPE)) < 0.5).astype("float32")
    ckpt = repro.Checkpoints(tmp_path, {"model": "m1"})
    trained = vae()
    trained.fit(x, validation_data=(x,), epochs=2, batch_size=10, verbose=0, callbacks=ckpt.callbacks())
    ckpt.finish(trained)
    fresh = vae()  # never called on data: it must still accept the saved weights
    assert ckpt.complete
    ckpt.finish(fresh)
    for a, b in zip(trained.get_weights(), fresh.get_weights()):
        np.testing.assert_array_equal(a, b)


class BuiltOnCall(keras.Model):
    """A VAE-like subclass that makes its layers' variables at its first call, as notebook 01's VAE does."""

    def __init__(self):
        super().__init__()
        self.dense = keras.layers.Dense(3)

    def call(self, x):
        return self.dense(x)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        return keras.ops.mean((y_pred - 1.0) ** 2)


def test_a_finished_training_of_a_model_built_at_its_first_call_loads_into_a_fresh_one(tmp_path):
    from vae_utils import training

    batches = data.ShuffledBatches(np.random.default_rng(0).random((40, 5)).astype("float32"), 10, seed=0)

    def fit(model):
        ckpt = repro.Checkpoints(tmp_path, {"model": "built on call"}, monitor="loss")
        training.fit(model, batches, epochs=2, optimizer=keras.optimizers.Adam(1e-2), checkpoints=ckpt)
        return ckpt

    keras.utils.set_random_seed(0)
    trained, fresh = BuiltOnCall(), BuiltOnCall()
    fit(trained)
    ckpt = fit(fresh)  # never called on data before: finish builds it from the batches, then loads
    assert ckpt.status == "loaded a finished training"
    for a, b in zip(trained.get_weights(), fresh.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    ckpt.data = None  # as if no batches had been given to callbacks(): nothing to build it with
    with pytest.raises(ValueError, match=r"BuiltOnCall is not built, so the weights in .* cannot load"):
        ckpt.finish(BuiltOnCall())


def test_a_fit_without_validation_data_keeps_its_best_training_loss_and_logs_no_empty_columns(tmp_path):
    ckpt = repro.Checkpoints(tmp_path, {"epochs": 3}, monitor="loss")
    model, batches, _ = _setup()
    model.fit(batches, epochs=3, verbose=0, callbacks=ckpt.callbacks())
    log = ckpt.finish(model)
    assert len(log["loss"]) == 3 and "epoch_seconds" not in log
    assert not any(key.startswith("val_") for key in log), log.keys()
    assert ckpt.record()["seconds_per_epoch"] > 0


def test_the_code_hash_ignores_docstrings_and_comments_but_not_code(tmp_path):
    versions = {
        "documented": 'class Model:\n    """A docstring."""\n\n'
        "    def call(self, x):\n        return 2 * x  # why\n",
        "bare": "class Model:\n    def call(self, x):\n        return 2 * x\n",
        "changed": "class Model:\n    def call(self, x):\n        return 3 * x\n",
    }
    models = {}
    for name, source in versions.items():
        (tmp_path / name).mkdir()
        (tmp_path / name / "model.py").write_text(source)
        spec = importlib.util.spec_from_file_location("model", tmp_path / name / "model.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        models[name] = module.Model
    documented, bare, changed = models.values()
    assert repro.code_version(documented) == repro.code_version(bare)
    assert repro.code_version(documented.call) == repro.code_version(bare.call)
    assert repro.code_version(changed) != repro.code_version(bare)


# --- exact resume: a kill at any point of a checkpoint's write costs at most the epoch in progress ---------


class _Killed(BaseException):
    """Stands for SIGKILL: nothing after it runs, no handler cleans up."""


def _kill_at(monkeypatch, function: str, call: int, path_name: str | None):
    """Make ``checkpoints.<function>`` die at its ``call``-th use on a path named ``path_name``."""
    module = importlib.import_module("vae_utils.checkpoints")
    owner, name = function.split(".")
    target = getattr(module, owner)
    real = getattr(target, name)
    calls = {"n": 0}

    def dying(*args, **kwargs):
        if path_name is None or Path(args[0]).name == path_name:
            calls["n"] += 1
            if calls["n"] == call:
                raise _Killed(f"killed at {function}({path_name}) call {call}")
        return real(*args, **kwargs)

    monkeypatch.setattr(target, name, dying)


def _weights_after(tmp_path, epochs, kill=None, monkeypatch=None):
    from vae_utils import training

    def fit(ckpt):
        model, batches, error = _setup()  # a new process: everything rebuilt
        optimizer = keras.optimizers.Adam(1e-2)
        training.fit(model, batches, epochs=epochs, optimizer=optimizer, checkpoints=ckpt, callbacks=[error])
        return model

    if kill:
        with monkeypatch.context() as m:
            _kill_at(m, *kill)
            with pytest.raises(_Killed):
                fit(repro.Checkpoints(tmp_path, {"epochs": epochs}, monitor="val_error"))
    ckpt = repro.Checkpoints(tmp_path, {"epochs": epochs}, monitor="val_error")
    model = fit(ckpt)
    return model, ckpt, json.loads((ckpt.state_dir / "state.json").read_text())


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    """The four-epoch training that every killed one must resume to, trained once."""
    return _weights_after(tmp_path_factory.mktemp("whole"), 4)


@pytest.mark.parametrize(
    "kill",
    [
        ("shutil.copyfile", 3, None),  # writing the third epoch's state.new/
        ("os.replace", 3, "state.new"),  # the third epoch: state/ moved aside, state.new/ not in place
        ("shutil.rmtree", 3, "state.old"),  # the third epoch: in place, the previous not yet removed
        ("os.replace", 1, "state.new"),  # the first epoch, before its state is in place
    ],
    ids=["while writing", "between the renames", "after the renames", "first epoch"],
)
def test_a_training_killed_anywhere_in_a_write_resumes_to_the_weights_of_an_uninterrupted_one(
    tmp_path, monkeypatch, kill, uninterrupted
):
    whole, whole_ckpt, _ = uninterrupted
    resumed, ckpt, state = _weights_after(tmp_path / "killed", 4, kill=kill, monkeypatch=monkeypatch)
    assert int(resumed.optimizer.iterations.numpy()) == int(whole.optimizer.iterations.numpy())
    assert ckpt.resumed_after_epoch in (1, 2, 3) and state["epoch"] == 4
    exact = keras.backend.backend() == "jax"
    for a, b in zip(whole.get_weights(), resumed.get_weights()):
        np.testing.assert_allclose(a, b, rtol=0 if exact else 1e-5, atol=0 if exact else 1e-6)
    for key in ("val_error", "loss"):
        assert ckpt.history()[key] == pytest.approx(whole_ckpt.history()[key], rel=0 if exact else 1e-5)


def _flip_a_bit(path):
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x10
    path.write_bytes(bytes(data))


@pytest.mark.parametrize(
    ("damage", "found"),
    [
        (lambda d: _flip_a_bit(d / "best.weights.h5"), "best.weights.h5 does not match"),
        (lambda d: (d / "log.csv").write_text((d / "log.csv").read_text()[:-3]), "log.csv does not match"),
        (lambda d: (d / "latest.weights.h5").unlink(), "latest.weights.h5"),
    ],
    ids=["one bit of the weights", "a cut log", "a missing file"],
)
def test_a_checkpoint_whose_files_changed_since_written_is_refused_naming_the_folder(tmp_path, damage, found):
    ckpt = repro.Checkpoints(tmp_path, {"epochs": 2}, monitor="val_error")
    model, batches, error = _setup()
    model.fit(batches, epochs=2, verbose=0, callbacks=[error, *ckpt.callbacks()])
    damage(ckpt.state_dir)
    with pytest.raises(RuntimeError, match=rf"checkpoint in {ckpt.directory} is damaged .*{found}"):
        ckpt.finish(model)


def test_a_monitor_missing_from_the_logs_is_an_error_naming_it(tmp_path):
    ckpt = repro.Checkpoints(tmp_path, {"epochs": 2}, monitor="val_error")
    model, batches, _ = _setup()
    with pytest.raises(KeyError, match="'val_error', which is not in the logs"):
        model.fit(batches, epochs=2, verbose=0, callbacks=ckpt.callbacks())
    assert not ckpt.resuming and not ckpt.complete


# --- identity: derived from the code that a training reaches ------------------------------------------


def _notebook(tmp_path, source: str, name: str) -> dict:
    """Run ``source`` as a notebook cell would: module ``__main__``, its source readable by inspect."""
    path = tmp_path / f"{name}.py"
    path.write_text(source)
    namespace = {"__name__": "__main__"}
    exec(compile(source, str(path), "exec"), namespace)
    return namespace


NOTEBOOK_CELL = """
from vae_utils import data


class Batches(data.SemiSupervisedBatches):
    def __len__(self):
        return super().__len__()


def scale(x, rng):
    return data.sample_gaussian(x, rng) * 1.0
"""


@pytest.mark.parametrize(
    "edit",
    [("return super().__len__()", "return super().__len__() + 0"), ("* 1.0", "* 2.0")],
    ids=["a method of a notebook-defined class", "a function the batches hold"],
)
def test_editing_code_the_training_reaches_moves_the_identity(tmp_path, edit):
    from vae_utils import training

    def bound(source, name):
        nb = _notebook(tmp_path, source, name)
        model, _, error = _setup()
        x = np.zeros((20, 4), "float32")
        batches = nb["Batches"](
            x[:5], np.arange(5) % K, x[5:], 1, 5, seed=0, n_classes=K, transform=nb["scale"]
        )
        return repro.Checkpoints(tmp_path, {"n": 1}).bind(training.fit, batches, error, model=model)

    same = bound(NOTEBOOK_CELL, "a")
    assert bound(NOTEBOOK_CELL, "b").key == same.key
    assert bound(NOTEBOOK_CELL.replace(*edit), "c").key != same.key
    for reached in (
        "vae_utils.training.cosine_adam",
        "vae_utils.evaluate.ClassificationError.on_epoch_end",
        "vae_utils.m2.SemiSupervisedVAE.negative_elbo_all_classes",
        "vae_utils.m2.LabelledEncoder.from_first_layer",
        "vae_utils.losses.gaussian_kl",
        "vae_utils.data.batches.sample_gaussian",
        "__main__.Batches.__len__",
    ):
        assert reached in same.code, f"{reached} trains the model but is not in its identity"
    assert not any(name.startswith("vae_utils.checkpoints.Checkpoints") for name in same.code)


def test_config_arrays_are_keyed_by_content_and_the_optimizer_and_layers_by_their_settings(tmp_path):
    zeros = np.zeros(2000)
    one = zeros.copy()
    one[7] = 1
    assert repro.Checkpoints(tmp_path, {"a": zeros}).key != repro.Checkpoints(tmp_path, {"a": one}).key
    model, _, _ = _setup()
    keys = {
        repro.Checkpoints(tmp_path, {}).bind(optimizer=keras.optimizers.Adam(lr), model=model).key
        for lr in (1e-3, 3e-4)
    }
    assert len(keys) == 2
    with pytest.raises(TypeError, match="keys must be strings"):
        repro.Checkpoints(tmp_path, {1: 2})


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
