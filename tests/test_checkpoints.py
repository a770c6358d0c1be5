"""Resumable training: an interrupted fit resumes from its last epoch, keeps its best epoch and its log."""

import importlib
import json

import keras
import numpy as np
import pytest

from vae_utils import evaluate, m2, models, repro

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
    batches = m2.SemiSupervisedBatches(x[:9], y[:9], x[9:], 3, 10, seed=seed, n_classes=K)
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


def test_a_new_config_starts_afresh_and_a_fresh_run_drops_a_stale_log(tmp_path):
    a = repro.Checkpoints(tmp_path, {"epochs": 2}, monitor="val_error")
    b = repro.Checkpoints(tmp_path, {"epochs": 3}, monitor="val_error")
    assert a.directory != b.directory
    model, batches, error = _setup()
    model.fit(batches, epochs=2, verbose=0, callbacks=[error, *a.callbacks()])
    a.finish(model)
    log = a.log_path.read_text()
    assert a.callbacks() == [] and a.log_path.read_text() == log, "a finished run's files must stay"
    a.done_path.unlink()  # a run that logged its epochs but never finished: the next one starts afresh
    model.fit(batches, epochs=2, verbose=0, callbacks=[error, *a.callbacks()])
    assert len(a.history()["val_error"]) == 2, "a fresh run must not append to the log of an earlier one"


def test_finish_without_best_weights_says_what_is_missing(tmp_path):
    ckpt = repro.Checkpoints(tmp_path, {}, monitor="val_error")
    model, _, _ = _setup()
    with pytest.raises(FileNotFoundError, match="val_error"):
        ckpt.finish(model)
    with pytest.raises(ValueError, match="mode"):
        repro.Checkpoints(tmp_path, {}, mode="lowest")


def test_sample_gaussian_draws_around_the_mean_with_the_given_spread():
    stats = np.concatenate([np.full((20_000, 2), 3.0), np.log(np.full((20_000, 2), 4.0))], axis=1)
    z = m2.sample_gaussian(stats, np.random.default_rng(0))
    assert z.shape == (20_000, 2) and z.dtype == np.float32
    np.testing.assert_allclose(z.mean(axis=0), 3.0, atol=0.05)
    np.testing.assert_allclose(z.std(axis=0), 2.0, atol=0.05)  # exp(0.5 * log 4)
    with pytest.raises(ValueError, match="even last dimension"):
        m2.sample_gaussian(np.zeros((4, 3)), np.random.default_rng(0))


def test_batches_apply_a_transform_to_every_draw():
    stats = np.concatenate([np.zeros((40, 2)), np.zeros((40, 2))], axis=1).astype("float32")
    y = np.arange(10) % 2
    batches = m2.SemiSupervisedBatches(
        stats[:10], y, stats[10:], 5, 10, seed=0, binarize=False, n_classes=2, transform=m2.sample_gaussian
    )
    first, again = batches[0]["x_unlabelled"], batches[0]["x_unlabelled"]
    assert first.shape == (10, 2) and not np.allclose(first, again), "each draw must be a fresh sample"
    with pytest.raises(ValueError, match="binarize=False"):
        m2.SemiSupervisedBatches(stats[:10], y, stats[10:], 5, 10, seed=0, transform=m2.sample_gaussian)


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


def test_a_fit_without_validation_data_keeps_its_best_training_loss_and_logs_no_empty_columns(tmp_path):
    ckpt = repro.Checkpoints(tmp_path, {"epochs": 3}, monitor="loss")
    model, batches, _ = _setup()
    model.fit(batches, epochs=3, verbose=0, callbacks=ckpt.callbacks())
    header = ckpt.log_path.read_text().splitlines()[0]
    assert "val_loss" in header, "CSVLogger writes val_ columns of NA without validation data"
    log = ckpt.finish(model)
    assert len(log["loss"]) == 3
    assert not any(key.startswith("val_") for key in log), log.keys()


def test_the_code_hash_ignores_docstrings_and_comments_but_not_code(tmp_path, monkeypatch):
    versions = {
        "documented": 'class Model:\n    """A docstring."""\n\n'
        "    def call(self, x):\n        return 2 * x  # why\n",
        "bare": "class Model:\n    def call(self, x):\n        return 2 * x\n",
        "changed": "class Model:\n    def call(self, x):\n        return 3 * x\n",
    }
    for name, source in versions.items():
        (tmp_path / f"model_{name}.py").write_text(source)
    monkeypatch.syspath_prepend(str(tmp_path))
    documented, bare, changed = (importlib.import_module(f"model_{name}").Model for name in versions)
    assert repro.code_version(documented) == repro.code_version(bare)
    assert repro.code_version(documented.call) == repro.code_version(bare.call)
    assert repro.code_version(changed) != repro.code_version(bare)
