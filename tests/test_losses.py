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
