"""The PixelCNN++ likelihood of an RGB pixel: a mixture of discretised logistics with coupled channels.

Salimans et al. (2017), as ``discretized_mix_logistic_loss`` in ``openai/pixel-cnn`` computes it, on
values ``k / (num_bins - 1)`` in [0, 1]: green's location moves with the observed red value and blue's
with red and green. The decoder's last axis holds ``10 K`` numbers per pixel: ``K`` mixture logits, then
for each channel ``K`` locations, ``K`` log-scales and ``K`` coefficients. Derived and written out in
``notebooks/03_cifar_horse_car_interpolation.ipynb``.
"""

from __future__ import annotations

import numpy as np
from keras import ops

from . import losses
from .checks import positive_int

__all__ = ["num_params", "unpack", "log_likelihood", "sample", "mean_image"]

CHANNELS = 3


def num_params(n_components: int) -> int:
    """Numbers per pixel the decoder outputs for ``n_components``: ``10 K``. Introduced in notebook 03."""
    return positive_int("n_components", n_components) * (1 + 3 * CHANNELS)


def _components(params) -> int:
    size = params.shape[-1]
    if size is None or size % (1 + 3 * CHANNELS):
        raise ValueError(f"the last axis of params must hold 10 numbers per component, found size {size}")
    return size // (1 + 3 * CHANNELS)


def unpack(params):
    """``(..., 10K)`` -> logits ``(..., K)``, locations, scales, coefficients. Introduced in notebook 03."""
    k = _components(params)
    logits = params[..., :k]
    rest = ops.reshape(params[..., k:], (*ops.shape(params)[:-1], CHANNELS, 3 * k))
    log_scale = ops.maximum(rest[..., k : 2 * k], losses.LOG_SCALE_MIN)
    return logits, rest[..., :k], log_scale, ops.tanh(rest[..., 2 * k :])


def _coupled_locations(x, loc, coeffs):
    """Each channel's location given the observed channels before it: ``(..., 3, K)``."""
    red, green = x[..., 0:1], x[..., 1:2]  # (..., 1): broadcast over the K components
    return ops.stack(
        [
            loc[..., 0, :],
            loc[..., 1, :] + coeffs[..., 0, :] * red,
            loc[..., 2, :] + coeffs[..., 1, :] * red + coeffs[..., 2, :] * green,
        ],
        axis=-2,
    )


def log_likelihood(x, params, num_bins=256):
    """log P(x) of RGB images ``(batch, H, W, 3)`` on the grid under the mixture ``params``
    ``(batch, H, W, 10K)``: ``(batch,)``. Written out in notebook 03."""
    if x.shape[-1] != CHANNELS:
        raise ValueError(f"x must be RGB images (..., {CHANNELS}), found shape {tuple(x.shape)}")
    logits, loc, log_scale, coeffs = unpack(params)
    x = ops.cast(x, params.dtype)
    loc = _coupled_locations(x, loc, coeffs)
    x_k = ops.expand_dims(x, -1) + ops.zeros_like(loc)  # (..., 3, K)
    # one discretised logistic per sub-pixel and component: flatten, so that its per-example sum is one value
    column = lambda t: ops.reshape(t, (-1, 1))  # noqa: E731
    log_p = losses.discretized_logistic_log_likelihood(column(x_k), column(loc), column(log_scale), num_bins)
    log_p = ops.sum(
        ops.reshape(log_p, ops.shape(loc)), axis=-2
    )  # (..., K): the three channels of a component
    log_mix = ops.logsumexp(ops.log_softmax(logits, axis=-1) + log_p, axis=-1)  # (batch, H, W)
    return losses.sum_per_example(log_mix)


def _numpy_parts(params):
    """``unpack`` evaluated to float64 NumPy arrays, for the sampler and the picture."""
    parts = unpack(np.asarray(params, dtype=np.float32))
    return tuple(np.asarray(ops.convert_to_numpy(t), dtype=np.float64) for t in parts)


def sample(params, rng, num_bins=256):
    """Draw images ``(..., H, W, 3)`` from the mixture (NumPy, float32): the distribution
    ``log_likelihood`` scores. Introduced in notebook 03."""
    rng = np.random.default_rng(rng)
    logits, loc, log_scale, coeffs = _numpy_parts(params)
    gumbel = -np.log(-np.log(rng.uniform(np.finfo(np.float64).tiny, 1.0, size=logits.shape)))
    pick = np.argmax(logits + gumbel, axis=-1)[..., None, None]  # (..., 1, 1)
    loc, log_scale, coeffs = (np.take_along_axis(t, pick, axis=-1)[..., 0] for t in (loc, log_scale, coeffs))
    red = losses.sample_discretized_logistic(loc[..., 0], log_scale[..., 0], rng, num_bins)
    green = losses.sample_discretized_logistic(
        loc[..., 1] + coeffs[..., 0] * red, log_scale[..., 1], rng, num_bins
    )
    blue_loc = loc[..., 2] + coeffs[..., 1] * red + coeffs[..., 2] * green
    blue = losses.sample_discretized_logistic(blue_loc, log_scale[..., 2], rng, num_bins)
    return np.stack([red, green, blue], axis=-1).astype(np.float32)


def mean_image(params):
    """A picture of the model's prediction (NumPy): each pixel the location of its most probable
    component, green and blue coupled to the red and green so obtained, clipped to [0, 1].
    Introduced in notebook 03.
    """
    logits, loc, _, coeffs = _numpy_parts(params)
    pick = np.argmax(logits, axis=-1)[..., None, None]
    loc, coeffs = (np.take_along_axis(t, pick, axis=-1)[..., 0] for t in (loc, coeffs))
    red = np.clip(loc[..., 0], 0, 1)
    green = np.clip(loc[..., 1] + coeffs[..., 0] * red, 0, 1)
    blue = np.clip(loc[..., 2] + coeffs[..., 1] * red + coeffs[..., 2] * green, 0, 1)
    return np.stack([red, green, blue], axis=-1).astype(np.float32)
