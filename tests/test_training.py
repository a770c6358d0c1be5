"""training.fit: the cosine-decayed Adam it builds, its loud stop on divergence, and its checkpoints."""

import keras
import numpy as np
import pytest

from vae_utils import data, losses, m2, models, repro, training

SHAPE = (4, 4)


def _vae(seed=0):
    keras.utils.set_random_seed(seed)
    return models.VAE(
        models.dense_encoder(SHAPE, 2, hidden=(8,)), models.dense_decoder(2, SHAPE, hidden=(8,)), seed=seed
    )


def _images(n=50, seed=0):
    return (np.random.default_rng(seed).random((n, *SHAPE)) < 0.5).astype("float32")


def test_fit_decays_the_learning_rate_along_a_cosine_to_a_tenth_over_every_step():
    vae = _vae()
    log = training.fit(vae, _images(), epochs=3, batch_size=20, learning_rate=1e-2)
    assert sorted(log) == ["kl", "loss", "reconstruction"] and len(log["loss"]) == 3
    steps = 3 * 3  # ceil(50 / 20) batches per epoch, as Keras draws them
    assert int(vae.optimizer.iterations) == steps
    schedule = vae.optimizer._learning_rate
    assert schedule.decay_steps == steps
    assert float(schedule(0)) == pytest.approx(1e-2)
    assert float(schedule(steps)) == pytest.approx(1e-3)


def test_steps_per_epoch_counts_batches_of_a_dataset_or_of_arrays():
    batches = data.BinarizedBatches(np.zeros((250, *SHAPE), "uint8"), 100, seed=0)
    assert training.steps_per_epoch(batches) == len(batches) == 2  # whole batches only
    assert training.steps_per_epoch(np.zeros((250, 3)), batch_size=100) == 3
    assert training.steps_per_epoch((np.zeros((200, 3)), np.zeros(200)), batch_size=100) == 2
    with pytest.raises(ValueError, match="batch_size is needed"):
        training.steps_per_epoch(np.zeros((250, 3)))
    with pytest.raises(ValueError, match="epochs must be an integer >= 1, found 0"):
        training.fit(_vae(), _images(), epochs=0, batch_size=10)


def test_fit_fails_loudly_when_the_loss_is_not_finite():
    x = _images()
    x[3, 0, 0] = np.nan
    with pytest.raises(FloatingPointError, match="non-finite"):
        training.fit(_vae(), x, epochs=1, batch_size=50, shuffle=False)


def test_a_finished_training_is_loaded_and_not_trained_again(tmp_path):
    x = _images()
    ckpt = repro.Checkpoints(tmp_path, {"epochs": 2}, monitor="loss")
    trained = _vae()
    log = training.fit(trained, x, epochs=2, batch_size=10, checkpoints=ckpt)
    assert ckpt.complete and len(log["loss"]) == 2
    files = {p: p.read_bytes() for p in ckpt.directory.rglob("*") if p.is_file()}

    fresh = _vae()
    fresh.set_weights([w + 1 for w in fresh.get_weights()])  # not the trained weights
    again = repro.Checkpoints(tmp_path, {"epochs": 2}, monitor="loss")
    assert training.fit(fresh, x, epochs=2, batch_size=10, checkpoints=again) == log
    assert again.status == "loaded a finished training"
    for a, b in zip(trained.get_weights(), fresh.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert {p: p.read_bytes() for p in ckpt.directory.rglob("*") if p.is_file()} == files


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
