"""The ELBO and the IWAE estimate against an exact log p(x) computed by quadrature."""

import json
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
from keras import ops
from scipy import integrate, stats
from scipy.special import expit

from vae_utils import evaluate, models


@pytest.fixture(scope="module")
def tiny_vae():
    """A VAE with a 1-D latent space over 6 binary pixels, so that p(x) is a 1-D integral."""

    keras.utils.set_random_seed(3)
    encoder = models.dense_encoder((6,), 1, hidden=(8,), activation="tanh")
    decoder = models.dense_decoder(1, (6,), hidden=(8,), activation="tanh")
    # sharpen the decoder so that p(x|z) depends strongly on z and the ELBO's gap is large
    for layer in decoder.layers:
        if layer.weights:
            layer.set_weights([w * 3.0 for w in layer.get_weights()])
    return models.VAE(encoder, decoder)


@pytest.fixture(scope="module")
def patterns():
    """All 64 binary images of 6 pixels."""
    return ((np.arange(64)[:, None] >> np.arange(6)) & 1).astype("float32")


def _exact_log_px(vae, x):
    # log p(x) = log integral of p(x|z) N(z; 0, 1) dz, by Simpson's rule on [-10, 10]
    grid = np.linspace(-10.0, 10.0, 4001)
    probs = expit(np.asarray(ops.convert_to_numpy(vae.decoder(grid[:, None].astype("float32"))), np.float64))
    log_px_z = x @ np.log(probs).T + (1 - x) @ np.log1p(-probs).T  # (patterns, grid)
    return np.log(integrate.simpson(np.exp(log_px_z) * stats.norm.pdf(grid), x=grid, axis=1))


def test_the_exact_marginal_sums_to_one(tiny_vae, patterns):
    # the quadrature reference itself: p(x) over all 64 images must sum to 1
    assert np.exp(_exact_log_px(tiny_vae, patterns)).sum() == pytest.approx(1.0, abs=1e-6)


def test_iwae_with_many_samples_converges_to_the_exact_log_likelihood(tiny_vae, patterns):
    estimate = evaluate.iwae_log_likelihood(tiny_vae, patterns, k=5000, seed=0)
    exact = _exact_log_px(tiny_vae, patterns)
    np.testing.assert_allclose(estimate, exact, atol=0.1)  # each image: the estimator's noise is ~0.02
    assert abs(estimate.mean() - exact.mean()) < 0.01  # averaged over 64 images the noise cancels


def test_elbo_is_below_the_exact_log_likelihood_and_iwae_tightens_with_k(tiny_vae, patterns):
    exact = _exact_log_px(tiny_vae, patterns).mean()
    x = np.repeat(patterns, 20, axis=0)  # 20 independent estimates per image average out the noise
    elbo = evaluate.elbo(tiny_vae, x, seed=1).mean()
    bounds = [evaluate.iwae_log_likelihood(tiny_vae, x, k=k, seed=1).mean() for k in (1, 10, 100, 1000)]
    assert elbo < exact - 0.1  # the gap: KL(q(z|x) || p(z|x)) of a poor, untrained encoder
    assert bounds[0] == pytest.approx(elbo, abs=0.1)  # L_1 is the ELBO
    assert all(a < b for a, b in zip(bounds, bounds[1:]))  # L_k grows with k ...
    assert bounds[-1] <= exact + 0.01  # ... and stays below log p(x)


def test_iwae_memory_does_not_depend_on_k_because_samples_come_in_passes(tiny_vae, patterns):
    # the same estimate in passes of 7 samples and of 500: only the batching differs
    few = evaluate.iwae_log_likelihood(tiny_vae, patterns[:4], k=700, samples_per_pass=7, seed=0)
    exact = _exact_log_px(tiny_vae, patterns[:4])
    np.testing.assert_allclose(few, exact, atol=0.1)


def test_bits_per_dim_of_a_fair_coin_per_pixel_is_one():
    assert evaluate.bits_per_dim(np.full(3, -784 * np.log(2.0)), 784) == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"k": 0}, "k must be an integer >= 1, found 0"),
        ({"k": 2.5}, "k must be an integer >= 1, found 2.5"),
        ({"batch_size": 0}, "batch_size must be an integer >= 1, found 0"),
        ({"samples_per_pass": -1}, "samples_per_pass must be an integer >= 1, found -1"),
    ],
)
def test_iwae_rejects_bad_arguments(tiny_vae, patterns, kwargs, message):
    with pytest.raises(ValueError, match=message):
        evaluate.iwae_log_likelihood(tiny_vae, patterns, **kwargs)


def test_evaluation_rejects_an_empty_or_unbatched_input(tiny_vae):
    with pytest.raises(ValueError, match=r"non-empty batch of examples, found shape \(6,\)"):
        evaluate.elbo(tiny_vae, np.zeros(6))
    with pytest.raises(ValueError, match=r"found shape \(0, 6\)"):
        evaluate.iwae_log_likelihood(tiny_vae, np.zeros((0, 6)))
    with pytest.raises(ValueError, match="num_dims must be an integer >= 1, found 0"):
        evaluate.bits_per_dim(np.zeros(2), 0)


@pytest.fixture(scope="module")
def tiny_logistic_vae():
    """A VAE with a 1-D latent space over 2 x 2 grey pixels and a discretised logistic decoder."""

    keras.utils.set_random_seed(4)
    encoder = models.dense_encoder((2, 2, 1), 1, hidden=(8,), activation="tanh")
    decoder = models.dense_decoder(1, (2, 2, 1), hidden=(8,), activation="tanh", likelihood="logistic")
    for layer in decoder.layers:
        if layer.weights:
            layer.set_weights([w * 3.0 for w in layer.get_weights()])
    out = decoder.get_layer("logits")
    kernel, bias = out.get_weights()
    bias[1::2] = -3.0  # output channels alternate (location, log-scale): scales of about 0.05
    out.set_weights([kernel, bias])
    return models.VAE(encoder, decoder, likelihood="logistic")


def _exact_log_px_logistic(vae, x):
    # log p(x) = log integral of prod_j P(x_j | loc_j(z), s_j(z)) N(z; 0, 1) dz, by Simpson's rule
    grid = np.linspace(-10.0, 10.0, 4001)
    params = np.asarray(ops.convert_to_numpy(vae.decoder(grid[:, None].astype("float32"))), np.float64)
    loc, scale = params[..., 0::2].reshape(len(grid), -1), np.exp(params[..., 1::2].reshape(len(grid), -1))
    flat = x.reshape(len(x), 1, -1).astype(np.float64)
    upper = np.where(flat > 1 - 1e-6, 1.0, stats.logistic.cdf((flat + 0.5 / 255 - loc) / scale))
    lower = np.where(flat < 1e-6, 0.0, stats.logistic.cdf((flat - 0.5 / 255 - loc) / scale))
    with np.errstate(divide="ignore"):  # far from the posterior a bin's mass underflows to 0
        log_px_z = np.log(upper - lower).sum(axis=-1)  # (images, grid)
    return np.log(integrate.simpson(np.exp(log_px_z) * stats.norm.pdf(grid), x=grid, axis=1))


def test_iwae_with_a_logistic_decoder_converges_to_the_exact_log_likelihood(tiny_logistic_vae):
    # images drawn from the model itself: decode z ~ N(0, 1), put the locations on the 8-bit grid
    z = np.random.default_rng(0).normal(size=(16, 1)).astype("float32")
    loc = ops.convert_to_numpy(tiny_logistic_vae.decoder(z))[..., 0::2]
    x = (np.round(np.clip(loc, 0, 1) * 255) / 255).astype("float32")
    exact = _exact_log_px_logistic(tiny_logistic_vae, x)
    estimate = evaluate.iwae_log_likelihood(tiny_logistic_vae, x, k=5000, seed=0)
    elbo = evaluate.elbo(tiny_logistic_vae, np.repeat(x, 50, axis=0), seed=0).reshape(16, 50).mean(axis=1)
    assert np.all(np.isfinite(exact)) and exact.mean() > 4 * np.log(1 / 256)  # better than uniform
    np.testing.assert_allclose(estimate, exact, atol=0.2)  # sharp posteriors: noisier than the Bernoulli case
    assert abs(estimate.mean() - exact.mean()) < 0.05
    assert np.all(elbo < exact)
    # bits per dimension of a proper likelihood on 4 grey pixels
    assert 0 < evaluate.bits_per_dim(estimate, 4) < 8


def test_a_model_without_its_own_likelihood_is_evaluated_as_bernoulli(tiny_vae, patterns):
    # notebook 01 writes its own VAE class, with an encoder and a decoder of logits and nothing else
    class NotebookVAE:
        encoder, decoder = tiny_vae.encoder, tiny_vae.decoder

    np.testing.assert_allclose(
        evaluate.elbo(NotebookVAE(), patterns, seed=2), evaluate.elbo(tiny_vae, patterns, seed=2), rtol=1e-6
    )
    np.testing.assert_allclose(
        evaluate.iwae_log_likelihood(NotebookVAE(), patterns, k=50, seed=2),
        evaluate.iwae_log_likelihood(tiny_vae, patterns, k=50, seed=2),
        rtol=1e-6,
    )


@pytest.mark.integration
def test_the_iwae_estimate_is_the_same_on_jax_as_on_tensorflow(tiny_vae, patterns, tmp_path):
    backend = "jax"
    # the same weights and noise in a JAX process, where the estimate runs through jax.jit
    weights = tmp_path / "weights.npz"
    np.savez(weights, *tiny_vae.get_weights())
    script = textwrap.dedent(
        f"""
        import json, keras, numpy as np
        from vae_utils import evaluate, models
        encoder = models.dense_encoder((6,), 1, hidden=(8,), activation="tanh")
        decoder = models.dense_decoder(1, (6,), hidden=(8,), activation="tanh")
        vae = models.VAE(encoder, decoder)
        with np.load({str(weights)!r}) as saved:
            vae.set_weights([saved[f"arr_{{i}}"] for i in range(len(saved.files))])
        x = ((np.arange(64)[:, None] >> np.arange(6)) & 1).astype("float32")
        values = evaluate.iwae_log_likelihood(vae, x, k=300, batch_size=16, samples_per_pass=100)
        print(json.dumps({{"backend": keras.backend.backend(), "values": values.tolist()}}))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        env={**os.environ, "KERAS_BACKEND": backend},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["backend"] == backend
    here = evaluate.iwae_log_likelihood(tiny_vae, patterns, k=300, batch_size=16, samples_per_pass=100)
    np.testing.assert_allclose(result["values"], here, rtol=1e-5)


def test_score_reports_the_elbo_of_all_images_and_the_iwae_estimate_of_the_first_ones(tiny_logistic_vae):
    x = (np.random.default_rng(1).integers(0, 256, size=(12, 2, 2, 1)) / 255).astype("float32")
    scores = evaluate.score(tiny_logistic_vae, x, k=20, n_iwae=5, seed=3)
    elbo = evaluate.elbo(tiny_logistic_vae, x, batch_size=200, seed=3)
    log_px = evaluate.iwae_log_likelihood(tiny_logistic_vae, x[:5], k=20, batch_size=10, seed=3)
    assert scores["n_iwae"] == 5
    assert scores["test_elbo"] == pytest.approx(elbo.mean())
    assert scores["test_log_likelihood_iwae"] == pytest.approx(log_px.mean())
    assert scores["test_bits_per_dim_iwae"] == pytest.approx(-log_px.mean() / (4 * np.log(2)))
    assert scores["test_bits_per_dim_elbo"] == pytest.approx(-elbo.mean() / (4 * np.log(2)))
    with pytest.raises(ValueError, match="pixel values in \\[0, 1\\]"):
        evaluate.score(tiny_logistic_vae, x * 255, k=2)


SHAPE = (4, 4)


def test_elbo_and_iwae_refuse_8_bit_pixels():
    from vae_utils import evaluate

    x = np.full((4, *SHAPE), 255, np.uint8)
    for estimate in (evaluate.elbo, evaluate.iwae_log_likelihood):
        with pytest.raises(ValueError, match=r"pixel values in \[0, 1\].*found uint8 values in \[255, 255\]"):
            estimate(
                models.VAE(
                    models.dense_encoder(SHAPE, 2, hidden=(8,)), models.dense_decoder(2, SHAPE, hidden=(8,))
                ),
                x,
            )


@pytest.mark.parametrize(
    ("values", "dims", "message"),
    [([], 784, "found an empty array"), ([-90.0, np.nan], 784, "found NaN"), ([-90.0], 784.5, "784.5")],
)
def test_bits_per_dim_refuses_empty_or_non_finite_input_and_fractional_dims(values, dims, message):
    from vae_utils import evaluate

    with pytest.raises(ValueError, match=message):
        evaluate.bits_per_dim(np.asarray(values), dims)
