"""The decoders' likelihoods, one table for the VAE and M2: what a decoder outputs for each, and the
log-likelihood and the shown image it gives.

Introduced in ``notebooks/01_vae_mnist.ipynb`` (``bernoulli``); ``logistic`` in notebook 02,
``logistic_mixture`` in notebook 03, ``gaussian`` in notebook 06.
"""

from __future__ import annotations

from keras import ops

from . import losses, pixel_mixture

__all__ = ["LIKELIHOODS", "MIXTURE_COMPONENTS", "decoder_output_shape", "log_likelihood", "shown_image"]

#: ``bernoulli``: one logit per pixel, for binary images (MNIST, notebook 01).
#: ``gaussian``: a mean and a log-variance per dimension, side by side on the last axis, for continuous
#: data (M2 on the features of M1, notebook 06).
#: ``logistic``: a location and a log-scale per sub-pixel, for 8-bit images scaled to [0, 1] (a
#: discretised logistic, a proper probability mass over the 256 grey levels; notebook 02).
#: ``logistic_mixture``: PixelCNN++'s mixture of discretised logistics per RGB pixel, green and blue
#: coupled to red and green (``pixel_mixture``; 10 numbers per component; notebook 03).
LIKELIHOODS = ("bernoulli", "gaussian", "logistic", "logistic_mixture")
MIXTURE_COMPONENTS = 10  # PixelCNN++'s number of logistics per pixel


def check_likelihood(likelihood):
    if likelihood not in LIKELIHOODS:
        raise ValueError(f"likelihood must be one of {LIKELIHOODS}, found {likelihood!r}")


def decoder_output_shape(data_shape, likelihood="bernoulli", components=MIXTURE_COMPONENTS):
    """The decoder's output for data of ``data_shape``: the same shape (``bernoulli``), the last axis
    doubled (``gaussian``, ``logistic``), ``(h, w, 10 components)`` (``logistic_mixture``).
    Introduced in notebook 02."""
    check_likelihood(likelihood)
    data_shape = tuple(data_shape)
    if likelihood == "bernoulli":
        return data_shape
    if likelihood == "gaussian":
        return (*data_shape[:-1], 2 * data_shape[-1])
    if len(data_shape) != 3:
        raise ValueError(
            "a discretised logistic decoder needs images with a channel axis (h, w, c); "
            f"found image shape {data_shape} (add one with x[..., None])"
        )
    if likelihood == "logistic":
        return (*data_shape[:2], 2 * data_shape[2])
    if data_shape[2] != pixel_mixture.CHANNELS:
        raise ValueError(
            f"a logistic_mixture decoder models RGB images (h, w, 3); found image shape {data_shape}"
        )
    return (*data_shape[:2], pixel_mixture.num_params(components))


def log_likelihood(x, params, likelihood):
    """log p(x | params) per example, for a decoder's output ``params`` under ``likelihood``.
    Introduced in notebook 01."""
    if likelihood == "bernoulli":
        return losses.bernoulli_log_likelihood(x, params)
    if likelihood == "logistic_mixture":
        return pixel_mixture.log_likelihood(x, params)
    first, second = ops.split(params, 2, axis=-1)
    if likelihood == "gaussian":
        return losses.gaussian_log_likelihood(x, first, second)
    return losses.discretized_logistic_log_likelihood(x, first, second)


def shown_image(params, likelihood):
    """What to show for a decoder's output: the pixel probabilities (``bernoulli``), the means
    (``gaussian``), the locations clipped to [0, 1] (``logistic``: each sub-pixel's mode), or
    ``pixel_mixture.mean_image``. Introduced in notebook 01."""
    if likelihood == "bernoulli":
        return ops.sigmoid(params)
    if likelihood == "logistic_mixture":
        return pixel_mixture.mean_image(ops.convert_to_numpy(params))
    first, _ = ops.split(params, 2, axis=-1)
    return first if likelihood == "gaussian" else ops.clip(first, 0.0, 1.0)
