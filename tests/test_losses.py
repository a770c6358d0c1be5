"""The log-likelihoods and the KL term against independent computations (scipy, Monte Carlo)."""

import numpy as np
import pytest
from keras import ops
from scipy import stats
from scipy.special import expit

from vae_utils import losses


def _np(t):
    return np.asarray(ops.convert_to_numpy(t), dtype=np.float64)


def test_kl_of_the_prior_with_itself_is_zero():
    # identity: KL(p || p) = 0, here with q = N(0, I) = p(z)
    assert np.allclose(_np(losses.gaussian_kl(np.zeros((3, 5)), np.zeros((3, 5)))), 0.0)


def test_kl_is_positive_for_any_other_gaussian():
    # Gibbs' inequality: KL(q || p) > 0 when q != p
    rng = np.random.default_rng(0)
    kl = _np(losses.gaussian_kl(rng.normal(size=(100, 4)), rng.normal(size=(100, 4))))
    assert kl.shape == (100,) and (kl > 0).all()


def test_closed_form_kl_equals_a_monte_carlo_estimate():
    # KL(q || p) = E_q[log q(z) - log p(z)], estimated with 10^6 samples of z ~ q
    rng = np.random.default_rng(1)
    mean, log_var = np.array([0.7, -1.2, 0.1]), np.array([-0.5, 0.8, -2.0])
    z = mean + np.exp(0.5 * log_var) * rng.normal(size=(1_000_000, 3))
    log_ratio = stats.norm.logpdf(z, mean, np.exp(0.5 * log_var)).sum(-1) - stats.norm.logpdf(z).sum(-1)
    standard_error = log_ratio.std() / np.sqrt(len(log_ratio))
    closed_form = _np(losses.gaussian_kl(mean[None], log_var[None]))[0]
    assert abs(closed_form - log_ratio.mean()) < 4 * standard_error


def test_bernoulli_log_likelihood_equals_scipy_summed_over_pixels():
    rng = np.random.default_rng(2)
    logits = rng.normal(scale=3.0, size=(5, 7, 6)).astype("float32")
    x = (rng.random((5, 7, 6)) < 0.5).astype("float32")
    expected = stats.bernoulli.logpmf(x, expit(logits.astype(np.float64))).sum(axis=(1, 2))
    np.testing.assert_allclose(_np(losses.bernoulli_log_likelihood(x, logits)), expected, rtol=1e-5)


def test_bernoulli_log_likelihood_is_finite_for_extreme_logits():
    # sigmoid(100) rounds to 1 in float32, so log(1 - sigmoid) would be -inf; the exact value is -100
    logits = np.array([[100.0, -100.0]], dtype="float32")
    np.testing.assert_allclose(_np(losses.bernoulli_log_likelihood(np.array([[0.0, 1.0]]), logits)), [-200.0])
    np.testing.assert_allclose(
        _np(losses.bernoulli_log_likelihood(np.array([[1.0, 0.0]]), logits)), [0.0], atol=1e-6
    )


def test_gaussian_log_likelihood_equals_scipy_over_all_non_batch_axes():
    rng = np.random.default_rng(3)
    x, mean = rng.normal(size=(2, 3, 4, 5)), rng.normal(size=(2, 3, 4, 5))
    log_var = rng.normal(size=(2, 3, 4, 5))
    expected = stats.norm.logpdf(x, mean, np.exp(0.5 * log_var)).sum(axis=(1, 2, 3))
    np.testing.assert_allclose(_np(losses.gaussian_log_likelihood(x, mean, log_var)), expected, rtol=1e-6)


def test_gaussian_log_likelihood_broadcasts_a_shared_log_variance():
    x, mean = np.ones((3, 4)), np.zeros((3, 4))
    expected = stats.norm.logpdf(x, 0.0, np.exp(0.5 * 0.3)).sum(axis=1)
    np.testing.assert_allclose(_np(losses.gaussian_log_likelihood(x, mean, 0.3)), expected, rtol=1e-6)


def test_standard_normal_log_density_equals_scipy():
    z = np.random.default_rng(4).normal(size=(6, 3))
    expected = stats.multivariate_normal(np.zeros(3), np.eye(3)).logpdf(z)
    np.testing.assert_allclose(_np(losses.standard_normal_log_density(z)), expected, rtol=1e-6)


@pytest.mark.parametrize("shape", [(4,), (4, 3), (4, 3, 2, 2)])
def test_sum_per_example_keeps_the_batch_axis(shape):
    values = np.ones(shape)
    np.testing.assert_allclose(_np(losses.sum_per_example(values)), np.full(4, np.prod(shape[1:])))


# --- discretized logistic (8-bit images) ---------------------------------------------------------------

LEVELS = 255  # 256 bins


def _reference_log_probabilities(k, loc, scale, num_bins=256):
    """log P(x = k / (num_bins - 1)) in float64 from scipy's log CDF and log survival function.

    ``log(F(u) - F(l))`` as ``log F(u) + log(1 - F(l) / F(u))`` left of ``loc`` and as
    ``log S(l) + log(1 - S(u) / S(l))`` right of it, so neither side cancels; the edge bins are
    ``log F(u)`` and ``log S(l)``.
    """
    k, loc, scale = np.broadcast_arrays(np.asarray(k), np.asarray(loc, float), np.asarray(scale, float))
    levels = num_bins - 1
    x = k / levels
    upper, lower = x + 0.5 / levels, x - 0.5 / levels
    log_f_u, log_f_l = stats.logistic.logcdf(upper, loc, scale), stats.logistic.logcdf(lower, loc, scale)
    log_s_u, log_s_l = stats.logistic.logsf(upper, loc, scale), stats.logistic.logsf(lower, loc, scale)
    with np.errstate(divide="ignore"):
        left = log_f_u + np.log(-np.expm1(log_f_l - log_f_u))
        right = log_s_l + np.log(-np.expm1(log_s_u - log_s_l))
    interior = np.where(x < loc, left, right)
    return np.where(k == 0, log_f_u, np.where(k == levels, log_s_l, interior))


def test_discretized_logistic_equals_scipy_bin_probabilities_including_both_edges():
    rng = np.random.default_rng(5)
    k = rng.integers(0, 256, size=(6, 4, 4, 3))
    k[0, 0, 0] = [0, 255, 0]
    k[1, 0, 0] = [255, 0, 255]
    loc = rng.uniform(-0.2, 1.2, size=k.shape).astype("float32")
    log_scale = rng.uniform(-5.0, 0.0, size=k.shape).astype("float32")
    x = (k / LEVELS).astype("float32")
    expected = _reference_log_probabilities(k, loc, np.exp(log_scale.astype(float))).sum(axis=(1, 2, 3))
    found = losses.discretized_logistic_log_likelihood(x, loc, log_scale)
    assert tuple(found.shape) == (6,)
    np.testing.assert_allclose(_np(found), expected, rtol=1e-5)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize(
    ("loc", "log_scale"), [(0.5, -3.0), (0.0, -5.0), (1.0, -1.0), (0.37, -7.0), (-2.0, 1.5)]
)
def test_discretized_logistic_probabilities_of_all_values_sum_to_one(loc, log_scale, dtype):
    x = (np.arange(256) / LEVELS).astype(dtype)[:, None]  # one "example" per value
    log_p = _np(
        losses.discretized_logistic_log_likelihood(x, np.full_like(x, loc), np.full_like(x, log_scale))
    )
    assert abs(np.exp(log_p).sum() - 1.0) < 1e-5


def test_discretized_logistic_is_exact_where_the_naive_difference_underflows_in_float32():
    # with s = e^-6.5 the bins 0.2 or more away from loc have sigmoid differences below float32's range
    k = np.array([[0, 40, 77, 128, 200, 255]])
    loc = np.full(k.shape, 0.51, dtype="float32")
    log_scale = np.full(k.shape, -6.5, dtype="float32")
    x = (k / LEVELS).astype("float32")
    expected = _reference_log_probabilities(k, loc.astype(float), np.exp(log_scale.astype(float)))
    assert np.all(np.isfinite(expected)) and expected.min() < -200
    half, s = np.float32(0.5 / LEVELS), np.exp(log_scale)
    with np.errstate(divide="ignore"):
        naive = np.log(expit((x + half - loc) / s) - expit((x - half - loc) / s))  # float32 throughout
    assert np.isneginf(naive).any()
    per_value = [
        _np(losses.discretized_logistic_log_likelihood(x[:, [i]], loc[:, [i]], log_scale[:, [i]]))[0]
        for i in range(k.shape[1])
    ]
    np.testing.assert_allclose(per_value, expected[0], rtol=1e-5, atol=1e-4)


def test_discretized_logistic_clamps_log_scale_at_the_documented_bound():
    x, loc = np.array([[0.5]], dtype="float32"), np.array([[0.5]], dtype="float32")
    at_bound = losses.discretized_logistic_log_likelihood(x, loc, np.float32(losses.LOG_SCALE_MIN))
    below = losses.discretized_logistic_log_likelihood(x, loc, np.float32(-30.0))
    np.testing.assert_allclose(_np(below), _np(at_bound))


def _gradients(fn, *args):
    """Gradients of ``sum(fn(*args))`` with respect to every argument, with the active backend's autodiff."""
    import keras

    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        variables = [tf.Variable(a) for a in args]
        with tf.GradientTape() as tape:
            total = tf.reduce_sum(fn(*variables))
        return [np.asarray(g) for g in tape.gradient(total, variables)]
    if backend == "jax":
        import jax
        import jax.numpy as jnp

        grads = jax.grad(lambda *a: jnp.sum(fn(*a)), argnums=tuple(range(len(args))))(*args)
        return [np.asarray(g) for g in grads]
    pytest.skip(f"no gradient helper for the {backend} backend")


def test_discretized_logistic_gradients_are_finite_at_the_edges_and_for_extreme_parameters():
    k = np.array([0, 255, 0, 255, 128, 128, 0, 255, 1, 254, 128, 128])
    loc = np.array([-50.0, 50.0, 50.0, -50.0, 0.5, 1e4, 0.0, 1.0, 0.5, 0.5, 0.5, 0.5], dtype="float32")
    log_scale = np.array([-7.0, -7.0, -7.0, -7.0, -7.0, 3.0, -20.0, 20.0, 100.0, -100.0, 0.0, 88.0])
    x, log_scale = (k / LEVELS).astype("float32")[None], log_scale.astype("float32")[None]

    def log_likelihood(x, loc, log_scale):
        return losses.discretized_logistic_log_likelihood(x, loc, log_scale)

    value = _np(log_likelihood(x, loc[None], log_scale))
    assert np.isfinite(value).all()
    for gradient in _gradients(log_likelihood, x, loc[None], log_scale):
        assert np.isfinite(gradient).all(), gradient


def test_discretized_logistic_sums_per_example_and_broadcasts_a_shared_log_scale():
    rng = np.random.default_rng(6)
    x = (rng.integers(0, 256, size=(3, 5, 2)) / LEVELS).astype("float32")
    loc = rng.uniform(size=x.shape).astype("float32")
    per_example = _np(losses.discretized_logistic_log_likelihood(x, loc, np.float32(-2.0)))
    assert per_example.shape == (3,)
    each = [
        _np(losses.discretized_logistic_log_likelihood(x[i : i + 1], loc[i : i + 1], -2.0))[0]
        for i in range(3)
    ]
    np.testing.assert_allclose(per_example, each, rtol=1e-6)


def test_discretized_logistic_rejects_fewer_than_two_bins():
    with pytest.raises(ValueError, match="num_bins must be an integer >= 2, found 1"):
        losses.discretized_logistic_log_likelihood(np.zeros((1, 2)), np.zeros((1, 2)), 0.0, num_bins=1)
    with pytest.raises(ValueError, match="num_bins"):
        losses.sample_discretized_logistic(0.5, -3.0, 0, num_bins=2.5)


@pytest.mark.parametrize(("loc", "log_scale"), [(0.3, -4.0), (0.02, -3.5), (0.97, -3.0)])
def test_discretized_logistic_samples_lie_on_the_grid_with_the_model_frequencies(loc, log_scale):
    n = 200_000
    samples = losses.sample_discretized_logistic(np.full(n, loc), log_scale, np.random.default_rng(7))
    assert samples.dtype == np.float32 and samples.shape == (n,)
    assert samples.min() >= 0.0 and samples.max() <= 1.0
    k = np.rint(samples.astype(np.float64) * LEVELS)
    np.testing.assert_allclose(samples, (k / LEVELS).astype(np.float32), rtol=0, atol=0)  # on the grid
    counts = np.bincount(k.astype(int), minlength=256)
    x = (np.arange(256) / LEVELS).astype("float32")[:, None]
    p = np.exp(
        _np(losses.discretized_logistic_log_likelihood(x, np.full_like(x, loc), np.full_like(x, log_scale)))
    )
    expected = n * p / p.sum()
    common = expected >= 5  # pool the rare values into one category for the chi-square test
    observed = np.append(counts[common], counts[~common].sum())
    expected = np.append(expected[common], expected[~common].sum())
    assert stats.chisquare(observed, expected).pvalue > 1e-3


def test_sample_discretized_logistic_broadcasts_and_respects_the_seed():
    loc = np.linspace(0, 1, 12).reshape(3, 4)
    first = losses.sample_discretized_logistic(loc, np.full((1, 4), -3.0), np.random.default_rng(8))
    again = losses.sample_discretized_logistic(loc, np.full((1, 4), -3.0), np.random.default_rng(8))
    assert first.shape == (3, 4)
    np.testing.assert_array_equal(first, again)
