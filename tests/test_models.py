"""The sampling layer, the builders and the VAE's training with plain fit, on every backend."""

import json
import logging
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
from keras import ops
from scipy import stats

from vae_utils import likelihoods, m2, models, pixel_mixture


def test_sampling_uses_the_standard_deviation_exp_half_log_var():
    # z = mean + exp(0.5 * log_var) * eps: with log_var = log 9 the standard deviation must be 3, not 9
    sampling = models.Sampling(seed=0)
    z_mean = np.full((200_000, 1), 2.0, dtype="float32")
    z = ops.convert_to_numpy(sampling([z_mean, np.full_like(z_mean, np.log(9.0))]))
    assert abs(z.mean() - 2.0) < 0.03 and abs(z.std() - 3.0) < 0.03


def test_sampling_is_reproducible_for_a_seed():
    inputs = [np.zeros((4, 3), "float32"), np.zeros((4, 3), "float32")]
    first = ops.convert_to_numpy(models.Sampling(seed=5)(inputs))
    np.testing.assert_array_equal(first, ops.convert_to_numpy(models.Sampling(seed=5)(inputs)))
    assert not np.array_equal(first, ops.convert_to_numpy(models.Sampling(seed=6)(inputs)))


@pytest.mark.parametrize(
    ("encoder", "decoder", "shape"),
    [
        (models.dense_encoder, models.dense_decoder, (28, 28)),
        (models.conv_encoder, models.conv_decoder, (28, 28)),
        (models.conv_encoder, models.conv_decoder, (32, 32, 3)),
    ],
)
def test_encoders_and_decoders_have_the_expected_shapes(encoder, decoder, shape):
    z_mean, z_log_var = encoder(shape, 7)(np.zeros((2, *shape), "float32"))
    assert tuple(z_mean.shape) == (2, 7) and tuple(z_log_var.shape) == (2, 7)
    assert tuple(decoder(7, shape)(np.zeros((2, 7), "float32")).shape) == (2, *shape)


def test_conv_decoder_rejects_a_size_it_cannot_upsample_to():
    with pytest.raises(ValueError, match=r"multiples of 4; found output_shape \(30, 30\)"):
        models.conv_decoder(2, (30, 30))


def _toy_binary_images(n=512, seed=0):
    # two prototypes with pixel noise: a structure a VAE can learn in a few epochs
    rng = np.random.default_rng(seed)
    prototypes = (rng.random((2, 8, 8)) < 0.5).astype("float32")
    x = prototypes[rng.integers(0, 2, n)]
    flips = rng.random(x.shape) < 0.05
    return np.where(flips, 1.0 - x, x).astype("float32")


def test_vae_trains_with_fit_and_reports_reconstruction_and_kl():
    keras.utils.set_random_seed(0)
    x = _toy_binary_images()
    vae = models.VAE(
        models.dense_encoder((8, 8), 2, hidden=(32,)), models.dense_decoder(2, (8, 8), hidden=(32,))
    )
    vae.compile(optimizer=keras.optimizers.Adam(1e-2))
    logs = vae.fit(x, batch_size=64, epochs=5, verbose=0).history
    assert {"loss", "reconstruction", "kl"} <= set(logs)
    assert logs["loss"][-1] < 0.7 * logs["loss"][0]
    np.testing.assert_allclose(logs["loss"], np.add(logs["reconstruction"], logs["kl"]), rtol=1e-4)
    result = vae.evaluate(x, batch_size=128, verbose=0, return_dict=True)
    assert set(result) == {"loss", "reconstruction", "kl"} and np.isfinite(result["loss"])


def test_vae_saves_and_loads(tmp_path):
    vae = models.VAE(
        models.dense_encoder((8, 8), 2, hidden=(16,)), models.dense_decoder(2, (8, 8), hidden=(16,))
    )
    x = _toy_binary_images(8)
    expected = ops.convert_to_numpy(vae(x)["z_mean"])
    vae.save(tmp_path / "vae.keras")
    loaded = keras.saving.load_model(tmp_path / "vae.keras")
    np.testing.assert_allclose(ops.convert_to_numpy(loaded.encoder(x)[0]), expected, rtol=1e-6)


def _installed_backends():
    found = []
    for backend, module in (("tensorflow", "tensorflow"), ("jax", "jax"), ("torch", "torch")):
        try:
            __import__(module)
        except ImportError:
            continue
        found.append(backend)
    return found


@pytest.mark.integration
@pytest.mark.parametrize("backend", _installed_backends())
def test_the_same_vae_code_trains_on_every_installed_backend(backend):
    script = textwrap.dedent(
        """
        import json, keras, numpy as np
        from vae_utils import models
        keras.utils.set_random_seed(0)
        x = (np.random.default_rng(0).random((256, 8, 8)) < 0.3).astype("float32")
        vae = models.VAE(models.dense_encoder((8, 8), 2, hidden=(16,)),
                         models.dense_decoder(2, (8, 8), hidden=(16,)), seed=0)
        vae.compile(optimizer=keras.optimizers.Adam(1e-2))
        logs = vae.fit(x, batch_size=64, epochs=3, verbose=0).history
        print(json.dumps({"backend": keras.backend.backend(), **{k: v[-1] for k, v in logs.items()},
                          "first_loss": logs["loss"][0]}))
        """
    )
    env = {**os.environ, "KERAS_BACKEND": backend}
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["backend"] == backend
    assert np.isfinite(result["loss"]) and result["loss"] < result["first_loss"]
    assert result["loss"] == pytest.approx(result["reconstruction"] + result["kl"], rel=1e-4)


@pytest.mark.parametrize(
    ("builder", "shape", "expected"),
    [
        (models.dense_decoder, (28, 20, 1), (28, 20, 2)),
        (models.conv_decoder, (32, 32, 3), (32, 32, 6)),
    ],
)
def test_logistic_decoders_output_a_location_and_a_log_scale_per_subpixel(builder, shape, expected):
    assert tuple(builder(5, shape, likelihood="logistic")(np.zeros((2, 5), "float32")).shape) == (
        2,
        *expected,
    )


@pytest.mark.parametrize("likelihood", likelihoods.LIKELIHOODS)
def test_the_vae_and_m2_build_every_likelihood_of_one_table_and_score_data_alike(likelihood):
    shape, rng = (4, 4, 3), np.random.default_rng(0)
    x = rng.integers(0, 2 if likelihood == "bernoulli" else 256, (2, *shape)) / (
        1 if likelihood == "bernoulli" else 255
    )
    x = x.astype("float32")
    vae = models.VAE(
        models.dense_encoder(shape, 2, hidden=(8,)),
        models.dense_decoder(2, shape, hidden=(8,), likelihood=likelihood),
        likelihood=likelihood,
    )
    semi = m2.SemiSupervisedVAE(
        m2.classifier(shape, 2, hidden=(8,)),
        m2.encoder(shape, 2, 2, hidden=(8,)),
        m2.decoder(2, 2, shape, hidden=(8,), likelihood=likelihood),
        n_classes=2,
        n_labelled=2,
        n_unlabelled=4,
        likelihood=likelihood,
    )
    expected = likelihoods.decoder_output_shape(shape, likelihood)
    assert tuple(vae.decoder.output_shape[1:]) == tuple(semi.decoder.output_shape[1:]) == expected
    params = rng.normal(size=(2, *expected)).astype("float32")
    from_vae = ops.convert_to_numpy(vae.log_likelihood(x, params))
    np.testing.assert_allclose(from_vae, ops.convert_to_numpy(semi.log_likelihood(x, params)), rtol=1e-6)
    if likelihood == "gaussian":  # means, then log-variances, on the last axis
        mean, log_var = np.split(params.astype("float64"), 2, axis=-1)
        exact = stats.norm.logpdf(x, mean, np.exp(0.5 * log_var)).reshape(2, -1).sum(axis=1)
        np.testing.assert_allclose(from_vae, exact, rtol=1e-5)
    assert np.all(np.isfinite(from_vae)) and np.all(from_vae < 0)


def test_a_logistic_decoder_needs_a_channel_axis_and_a_known_likelihood():
    with pytest.raises(ValueError, match=r"channel axis \(h, w, c\); found image shape \(28, 28\)"):
        models.dense_decoder(2, (28, 28), likelihood="logistic")
    with pytest.raises(
        ValueError,
        match=r"one of \('bernoulli', 'gaussian', 'logistic', 'logistic_mixture'\), found 'gauss'",
    ):
        models.VAE(models.dense_encoder((4,), 2), models.dense_decoder(2, (4,)), likelihood="gauss")


def test_logistic_vae_trains_and_decodes_to_images_in_the_unit_interval(tmp_path):
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    prototypes = rng.integers(0, 256, (2, 8, 8, 3))
    x = (
        np.clip(prototypes[rng.integers(0, 2, 256)] + rng.integers(-3, 4, (256, 8, 8, 3)), 0, 255) / 255.0
    ).astype("float32")
    vae = models.VAE(
        models.dense_encoder((8, 8, 3), 2, hidden=(32,)),
        models.dense_decoder(2, (8, 8, 3), hidden=(32,), likelihood="logistic"),
        likelihood="logistic",
    )
    vae.compile(optimizer=keras.optimizers.Adam(1e-2))
    logs = vae.fit(x, batch_size=64, epochs=8, verbose=0).history
    assert logs["loss"][-1] < logs["loss"][0] and np.isfinite(logs["loss"][-1])
    images = vae.decode(vae.encode(x[:5]))
    assert images.shape == (5, 8, 8, 3) and images.min() >= 0.0 and images.max() <= 1.0
    # the reconstructions resemble their inputs more than the other prototype
    assert np.abs(images - x[:5]).mean() < 0.25
    vae.save(tmp_path / "vae.keras")
    assert keras.saving.load_model(tmp_path / "vae.keras").likelihood == "logistic"


def test_a_mixture_vae_scores_with_pixel_mixture_trains_and_decodes_rgb_images(tmp_path):
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(1)
    x = (rng.integers(0, 256, (64, 8, 8, 3)) // 64 * 64 / 255.0).astype("float32")
    decoder = models.conv_decoder(
        2, (8, 8, 3), filters=(8,), dense_units=16, likelihood="logistic_mixture", components=3
    )
    assert decoder.output_shape == (None, 8, 8, 30)
    # every log-scale starts at INITIAL_LOG_SCALE; logits, locations and coefficients keep their zero bias
    _, loc, log_scale, coeffs = pixel_mixture.unpack(
        ops.convert_to_numpy(decoder.get_layer("logits").bias)[None]
    )
    assert np.all(ops.convert_to_numpy(log_scale) == models.INITIAL_LOG_SCALE)
    assert np.all(ops.convert_to_numpy(loc) == 0) and np.all(ops.convert_to_numpy(coeffs) == 0)
    vae = models.VAE(
        models.conv_encoder((8, 8, 3), 2, filters=(8,), dense_units=16),
        decoder,
        likelihood="logistic_mixture",
    )
    params = decoder(np.zeros((4, 2), "float32"))
    np.testing.assert_allclose(
        ops.convert_to_numpy(vae.log_likelihood(x[:4], params)),
        ops.convert_to_numpy(pixel_mixture.log_likelihood(x[:4], params)),
        rtol=1e-6,
    )
    vae.compile(optimizer=keras.optimizers.Adam(1e-2))
    logs = vae.fit(x, batch_size=32, epochs=4, verbose=0).history
    assert np.isfinite(logs["loss"]).all() and logs["loss"][-1] < logs["loss"][0]
    images = vae.decode(vae.encode(x[:5]))
    assert images.shape == (5, 8, 8, 3) and images.min() >= 0.0 and images.max() <= 1.0
    vae.save(tmp_path / "vae.keras")
    assert keras.saving.load_model(tmp_path / "vae.keras").likelihood == "logistic_mixture"


def test_a_mixture_decoder_needs_rgb_images_and_ten_numbers_per_component():
    with pytest.raises(ValueError, match=r"RGB images \(h, w, 3\); found image shape \(8, 8, 1\)"):
        models.conv_decoder(2, (8, 8, 1), filters=(8,), likelihood="logistic_mixture")
    encoder = models.conv_encoder((8, 8, 3), 2, filters=(8,), dense_units=16)
    logistic = models.conv_decoder(2, (8, 8, 3), filters=(8,), dense_units=16, likelihood="logistic")
    with pytest.raises(ValueError, match="was it built with likelihood='logistic_mixture'"):
        models.VAE(encoder, logistic, likelihood="logistic_mixture")


def test_init_log_scales_sets_only_the_log_scales_of_a_hand_built_mixture_head():
    z = keras.Input((2,))
    h = keras.layers.Reshape((4, 4, 1))(keras.layers.Dense(16)(z))
    head = keras.layers.Conv2D(pixel_mixture.num_params(2), 1, name="logits", bias_initializer="ones")(h)
    decoder = models.init_log_scales(keras.Model(z, head), "logistic_mixture")
    bias = ops.convert_to_numpy(decoder.get_layer("logits").bias)
    logits, loc, log_scale, _ = pixel_mixture.unpack(bias[None])
    assert np.all(ops.convert_to_numpy(log_scale) == models.INITIAL_LOG_SCALE)
    # the other numbers keep their initial bias of 1 (the coefficients pass through tanh in unpack)
    assert np.all(ops.convert_to_numpy(logits) == 1) and np.all(ops.convert_to_numpy(loc) == 1)
    assert models.init_log_scales(decoder, "bernoulli") is decoder


def test_tensorflows_retracing_notice_is_kept_out_of_outputs_and_its_other_warnings_are_not(caplog):
    logger = logging.getLogger("tensorflow")
    with caplog.at_level(logging.WARNING, logger="tensorflow"):
        logger.warning(
            "5 out of the last 5 calls to <function f at 0x7f0> triggered tf.function retracing. Tracing is "
            "expensive and the excessive number of tracings could be due to ..."
        )
        logger.warning("another warning")
    assert [r.getMessage() for r in caplog.records] == ["another warning"]


SHAPE = (4, 4)


def test_a_vae_refuses_an_encoder_and_decoder_that_do_not_fit():
    encoder = models.dense_encoder(SHAPE, 2, hidden=(8,))
    with pytest.raises(ValueError, match="encoder outputs 2-D codes but the decoder takes 3-D codes"):
        models.VAE(encoder, models.dense_decoder(3, SHAPE, hidden=(8,)))
    with pytest.raises(ValueError, match=r"decoder must output \(4, 4\).*found \(5, 5\)"):
        models.VAE(encoder, models.dense_decoder(2, (5, 5), hidden=(8,)))
    rgb = models.conv_encoder((8, 8, 3), 2)
    with pytest.raises(ValueError, match=r"was it built with likelihood='logistic'"):
        models.VAE(rgb, models.conv_decoder(2, (8, 8, 3)), likelihood="logistic")
