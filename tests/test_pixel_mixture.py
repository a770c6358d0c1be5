"""The PixelCNN++ mixture of discretised logistics against a direct float64 computation of its bins."""

import itertools

import numpy as np
import pytest
from keras import ops
from scipy import stats
from scipy.special import softmax

from vae_utils import pixel_mixture


def _np(t):
    return np.asarray(ops.convert_to_numpy(t), dtype=np.float64)


def _random_params(rng, shape, k, log_scale=(-3.5, -1.0)):
    """Decoder outputs ``shape + (10k,)`` in the PixelCNN++ layout, with log-scales in a range."""
    logits = rng.normal(size=(*shape, k))
    loc = rng.uniform(0.0, 1.0, (*shape, 3, k))
    scale = rng.uniform(*log_scale, (*shape, 3, k))
    coeffs = rng.normal(size=(*shape, 3, k))  # tanh of these: alpha, beta, gamma
    rest = np.concatenate([loc, scale, coeffs], axis=-1).reshape(*shape, 9 * k)
    return np.concatenate([logits, rest], axis=-1).astype("float32")


def _direct_log_p(x, params, num_bins=256):
    """log P(x) per pixel, written from the paper's formula with scipy's logistic CDF in float64."""
    params = params.astype(np.float64)
    k = params.shape[-1] // 10
    weights = softmax(params[..., :k], axis=-1)
    rest = params[..., k:].reshape(*params.shape[:-1], 3, 3 * k)
    loc, log_scale, raw = rest[..., :k], np.maximum(rest[..., k : 2 * k], -7.0), rest[..., 2 * k :]
    alpha, beta, gamma = (np.tanh(raw[..., i, :]) for i in range(3))
    r, g, b = (x[..., c : c + 1].astype(np.float64) for c in range(3))
    means = [loc[..., 0, :], loc[..., 1, :] + alpha * r, loc[..., 2, :] + beta * r + gamma * g]
    h = 0.5 / (num_bins - 1)
    prob = weights
    for c, value in enumerate((r, g, b)):
        s = np.exp(log_scale[..., c, :])
        upper = np.where(value > 1 - h, 1.0, stats.logistic.cdf(value + h, means[c], s))
        lower = np.where(value < h, 0.0, stats.logistic.cdf(value - h, means[c], s))
        prob = prob * (upper - lower)
    return np.log(prob.sum(axis=-1))


def test_log_likelihood_matches_the_formula_computed_directly():
    rng = np.random.default_rng(0)
    params = _random_params(rng, (4, 5, 6), k=3)
    x = (rng.integers(0, 256, (4, 5, 6, 3)) / 255.0).astype("float32")
    x[0, 0, 0] = [0.0, 1.0, 0.0]  # the edge bins of every channel
    x[0, 0, 1] = [1.0, 0.0, 1.0]
    ours = _np(pixel_mixture.log_likelihood(x, params))
    direct = _direct_log_p(x, params).sum(axis=(1, 2))
    assert ours.shape == (4,)
    np.testing.assert_allclose(ours, direct, rtol=2e-5)


def test_the_probabilities_of_all_values_of_a_pixel_sum_to_one():
    # 16 levels per channel: all 16**3 colours of one pixel, under a 4-component mixture
    levels = 16
    rng = np.random.default_rng(1)
    params = _random_params(rng, (1, 1), k=4, log_scale=(-3.0, -1.0))
    colours = np.array(list(itertools.product(range(levels), repeat=3)), dtype="float32") / (levels - 1)
    log_p = _np(
        pixel_mixture.log_likelihood(
            colours[:, None, None, :], np.repeat(params[None], len(colours), 0), num_bins=levels
        )
    )
    assert np.exp(log_p).sum() == pytest.approx(1.0, abs=1e-5)


@pytest.mark.parametrize("red", [0, 37, 128, 255])
def test_green_and_blue_given_red_sum_to_one_over_their_256_x_256_values(red):
    # sum over g, b of P(r, g, b) = P(r) = sum_k pi_k P_k(r): the two conditionals each sum to 1
    rng = np.random.default_rng(2 + red)
    params = _random_params(rng, (1, 1), k=3, log_scale=(-4.0, -2.0))
    gb = np.array(list(itertools.product(range(256), repeat=2)), dtype="float32") / 255.0
    x = np.concatenate([np.full((len(gb), 1), red / 255.0, "float32"), gb], axis=1)[:, None, None, :]
    joint = np.exp(_np(pixel_mixture.log_likelihood(x, np.repeat(params[None], len(gb), 0)))).sum()
    logits, loc, log_scale, _ = (_np(t) for t in pixel_mixture.unpack(params))
    value, h, s = red / 255.0, 0.5 / 255, np.exp(log_scale[0, 0, 0])
    upper = 1.0 if red == 255 else stats.logistic.cdf(value + h, loc[0, 0, 0], s)
    lower = 0.0 if red == 0 else stats.logistic.cdf(value - h, loc[0, 0, 0], s)
    marginal = np.sum(softmax(logits[0, 0]) * (upper - lower))
    assert joint == pytest.approx(marginal, rel=1e-4, abs=1e-9)


def _pack(logits, loc, log_scale, coeffs):
    """One pixel's parameters in the PixelCNN++ layout from per-channel rows ``(3, K)``."""
    rest = np.concatenate([loc, log_scale, coeffs], axis=-1).reshape(-1)
    return np.concatenate([logits, rest]).astype("float32")[None, None, :]


def test_samples_follow_the_probabilities_the_likelihood_assigns():
    # two comparable components, each with its own colour and strong coupling: every part shows
    levels = 6
    params = _pack(
        logits=np.array([0.0, 0.5]),
        loc=np.array([[0.2, 0.8], [0.0, 0.3], [0.6, 0.1]]),
        log_scale=np.full((3, 2), -2.5),
        coeffs=np.array([[2.0, -1.0], [-1.5, 0.5], [1.0, 1.0]]),
    )
    rng = np.random.default_rng(3)
    draws = pixel_mixture.sample(np.repeat(params[None], 200_000, 0), rng, num_bins=levels)[:, 0, 0]
    assert draws.shape == (200_000, 3) and draws.dtype == np.float32
    codes = np.rint(draws * (levels - 1)).astype(int) @ np.array([levels**2, levels, 1])
    frequencies = np.bincount(codes, minlength=levels**3) / len(codes)
    colours = np.array(list(itertools.product(range(levels), repeat=3)), dtype="float32") / (levels - 1)
    log_p = pixel_mixture.log_likelihood(
        colours[:, None, None, :], np.repeat(params[None], len(colours), 0), num_bins=levels
    )
    expected = np.exp(_np(log_p))
    assert expected.sum() == pytest.approx(1.0, abs=1e-5) and expected.max() > 0.05
    assert np.abs(frequencies - expected).max() < 0.005


def test_the_channel_coupling_is_what_makes_green_follow_red():
    # one component whose green location moves with red (alpha = tanh(3) ~ 1): green near red is likely
    k = 1
    logits, loc, log_scale = np.zeros(k), np.array([[0.5], [0.0], [0.5]]), np.full((3, k), -4.0)
    coeffs = np.array([[3.0], [0.0], [0.0]])
    params = np.concatenate([logits, np.concatenate([loc, log_scale, coeffs], axis=-1).reshape(-1)])
    params = np.tile(params.astype("float32"), (2, 1, 1, 1))
    x = np.array([[0.2, 0.2, 0.5], [0.8, 0.8, 0.5]], "float32")[:, None, None, :]
    log_p = _np(pixel_mixture.log_likelihood(x, params))
    np.testing.assert_allclose(log_p, _direct_log_p(x, params).sum(axis=(1, 2)), rtol=1e-5)
    swapped = np.array([[0.2, 0.8, 0.5], [0.8, 0.2, 0.5]], "float32")[:, None, None, :]
    assert (log_p > _np(pixel_mixture.log_likelihood(swapped, params)) + 5).all()


def test_the_layout_and_the_images_are_checked():
    assert pixel_mixture.num_params(10) == 100
    with pytest.raises(ValueError, match="10 numbers per component"):
        pixel_mixture.log_likelihood(np.zeros((1, 2, 2, 3), "float32"), np.zeros((1, 2, 2, 25), "float32"))
    with pytest.raises(ValueError, match=r"RGB images"):
        pixel_mixture.log_likelihood(np.zeros((1, 2, 2, 1), "float32"), np.zeros((1, 2, 2, 10), "float32"))
    with pytest.raises(ValueError, match="n_components"):
        pixel_mixture.num_params(0)


def test_the_mean_image_is_the_coupled_location_of_the_likeliest_component():
    rng = np.random.default_rng(4)
    params = _random_params(rng, (2, 3, 3), k=3)
    image = pixel_mixture.mean_image(params)
    assert image.shape == (2, 3, 3, 3) and image.min() >= 0 and image.max() <= 1
    logits, loc, _, coeffs = (_np(t) for t in pixel_mixture.unpack(params))
    top = logits[0, 0, 0].argmax()
    red = np.clip(loc[0, 0, 0, 0, top], 0, 1)
    assert image[0, 0, 0, 0] == pytest.approx(red, abs=1e-6)
    assert image[0, 0, 0, 1] == pytest.approx(
        np.clip(loc[0, 0, 0, 1, top] + coeffs[0, 0, 0, 0, top] * red, 0, 1), abs=1e-6
    )
