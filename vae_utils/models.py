"""The VAE's building blocks: the sampling layer, encoder and decoder builders, and the model.

Written with ``keras.ops`` and ``keras.random`` only and trained with plain ``fit``, so the same code
runs on the TensorFlow, JAX and PyTorch backends. Introduced in ``notebooks/01_vae_mnist.ipynb``.
"""

from __future__ import annotations

import logging
import math

import keras
import numpy as np
from keras import layers, ops

from . import likelihoods, losses, pixel_mixture
from .likelihoods import MIXTURE_COMPONENTS, decoder_output_shape
from .training import ScannedSteps


def _not_a_retracing_notice(record: logging.LogRecord) -> bool:
    # VAE.encode and VAE.decode call predict on images of each notebook's own sizes; TensorFlow then
    # warns that its predict function "triggered tf.function retracing", which is expected here and
    # would fill the notebooks' outputs with memory addresses. Every other TensorFlow message passes.
    return "triggered tf.function retracing" not in record.getMessage()


logging.getLogger("tensorflow").addFilter(_not_a_retracing_notice)

__all__ = [
    "INITIAL_LOG_SCALE",
    "Sampling",
    "VAE",
    "conv_decoder",
    "conv_encoder",
    "dense_decoder",
    "dense_encoder",
    "gaussian_head",
    "init_log_scales",
]


@keras.saving.register_keras_serializable(package="vae_utils")
class Sampling(layers.Layer):
    """Draw ``z = z_mean + exp(0.5 * z_log_var) * eps``, ``eps ~ N(0, I)``: the reparameterisation
    trick, so gradients flow through the mean and log-variance. Written out in notebook 01."""

    def __init__(self, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, inputs):
        z_mean, z_log_var = inputs
        eps = keras.random.normal(ops.shape(z_mean), dtype=z_mean.dtype, seed=self.seed_generator)
        return z_mean + ops.exp(0.5 * z_log_var) * eps

    def get_config(self):
        return {**super().get_config(), "seed": self.seed}


def gaussian_head(latent_dim):
    """The two dense layers from features to a diagonal Gaussian's ``[z_mean, z_log_var]``, shared by
    every encoder of the package (M2's too). Introduced in notebook 01."""
    return layers.Dense(latent_dim, name="z_mean"), layers.Dense(latent_dim, name="z_log_var")


#: The decoder's initial log-scale of every sub-pixel under a logistic likelihood: scales of exp(-3) = 0.05,
#: the spread of a blurry reconstruction around an 8-bit image in [0, 1], instead of exp(0) = 1, which
#: spreads each sub-pixel over its whole range and costs the first hundreds of steps to shrink.
INITIAL_LOG_SCALE = -3.0


def init_log_scales(decoder, likelihood):
    """Set the bias of every log-scale output of ``decoder`` (last layer ``logits``) to
    ``INITIAL_LOG_SCALE``; return ``decoder``. Introduced in notebook 03."""
    if likelihood in ("bernoulli", "gaussian"):
        return decoder
    out = decoder.get_layer("logits")
    bias = ops.convert_to_numpy(out.bias).copy()
    params = decoder.output_shape[-1]
    per_pixel = bias.reshape(-1, params)
    if likelihood == "logistic":  # 2c: c locations, then c log-scales
        per_pixel[:, params // 2 :] = INITIAL_LOG_SCALE
    else:  # K logits, then per channel K locations, K log-scales, K coefficients
        k = params // pixel_mixture.num_params(1)
        for c in range(pixel_mixture.CHANNELS):
            start = k + c * 3 * k + k
            per_pixel[:, start : start + k] = INITIAL_LOG_SCALE
    out.bias.assign(bias)
    return decoder


def dense_encoder(input_shape, latent_dim, hidden=(500, 500), activation="softplus"):
    """q(z|x): an MLP from images of ``input_shape`` to ``[z_mean, z_log_var]``. Introduced in notebook 01."""
    x = keras.Input(shape=tuple(input_shape), name="x")
    h = layers.Flatten()(x)
    for units in hidden:
        h = layers.Dense(units, activation=activation)(h)
    return keras.Model(x, [head(h) for head in gaussian_head(latent_dim)], name="encoder")


def dense_decoder(latent_dim, output_shape, hidden=(500, 500), activation="softplus", likelihood="bernoulli"):
    """p(x|z): an MLP from ``z`` to the parameters of ``likelihood`` for images of ``output_shape``
    (``decoder_output_shape``). Introduced in notebook 01."""
    out_shape = decoder_output_shape(output_shape, likelihood)
    z = keras.Input(shape=(latent_dim,), name="z")
    h = z
    for units in reversed(hidden):
        h = layers.Dense(units, activation=activation)(h)
    h = layers.Dense(math.prod(out_shape), name="logits")(h)
    return init_log_scales(keras.Model(z, layers.Reshape(out_shape)(h), name="decoder"), likelihood)


def conv_encoder(input_shape, latent_dim, filters=(32, 64), dense_units=256):
    """q(z|x): strided 3x3 convolutions (each halves the image), a dense layer. Written out in notebook 02."""
    input_shape = tuple(input_shape)
    if len(input_shape) == 2:
        input_shape = (*input_shape, 1)
    x = keras.Input(shape=input_shape, name="x")
    h = x
    for n in filters:
        h = layers.Conv2D(n, 3, strides=2, padding="same", activation="relu")(h)
    h = layers.Dense(dense_units, activation="relu")(layers.Flatten()(h))
    return keras.Model(x, [head(h) for head in gaussian_head(latent_dim)], name="encoder")


def conv_decoder(
    latent_dim,
    output_shape,
    filters=(64, 32),
    dense_units=256,
    likelihood="bernoulli",
    components=MIXTURE_COMPONENTS,
):
    """p(x|z): the mirror of ``conv_encoder``, ending in the per-pixel parameters of ``likelihood``
    (``decoder_output_shape``). Written out in notebook 02."""
    output_shape = decoder_output_shape(output_shape, likelihood, components)
    height, width = output_shape[:2]
    channels = output_shape[2] if len(output_shape) == 3 else 1
    scale = 2 ** len(filters)
    if height % scale or width % scale:
        raise ValueError(
            f"conv_decoder halves the image {len(filters)} times, so height and width must be "
            f"multiples of {scale}; found output_shape {output_shape}"
        )
    z = keras.Input(shape=(latent_dim,), name="z")
    h = layers.Dense(dense_units, activation="relu")(z)
    h = layers.Dense((height // scale) * (width // scale) * filters[0], activation="relu")(h)
    h = layers.Reshape((height // scale, width // scale, filters[0]))(h)
    for n in filters:
        h = layers.Conv2DTranspose(n, 3, strides=2, padding="same", activation="relu")(h)
    h = layers.Conv2D(channels, 3, padding="same", name="logits")(h)
    return init_log_scales(keras.Model(z, layers.Reshape(output_shape)(h), name="decoder"), likelihood)


def _check_pair(encoder, decoder, likelihood):
    """Refuse an encoder and a decoder that do not fit together, before any TensorFlow or JAX error."""
    try:
        x_shape = tuple(encoder.inputs[0].shape[1:])
        latent = encoder.outputs[0].shape[-1]
        z_dim = decoder.inputs[0].shape[-1]
        out_shape = tuple(decoder.outputs[0].shape[1:])
    except (AttributeError, IndexError, TypeError):
        return  # not functional models (a subclassed network): nothing to compare before a call
    if latent != z_dim:
        raise ValueError(
            f"the encoder outputs {latent}-D codes but the decoder takes {z_dim}-D codes: build both with "
            "the same latent_dim"
        )
    components = max(out_shape[-1] // pixel_mixture.num_params(1), 1)
    expected = decoder_output_shape(x_shape, likelihood, components)
    if math.prod(out_shape) != math.prod(expected):  # (28, 28, 1) and (28, 28) hold the same pixels
        raise ValueError(
            f"for {likelihood} images of shape {x_shape} the decoder must output {tuple(expected)} "
            f"(decoder_output_shape), found {out_shape}: was it built with likelihood={likelihood!r}?"
        )


@keras.saving.register_keras_serializable(package="vae_utils")
class VAE(ScannedSteps, keras.Model):
    """A VAE: Gaussian posterior, N(0, I) prior, a decoder for ``likelihood`` (``likelihoods``);
    ``compute_loss`` is the negative ELBO with its ``reconstruction`` and ``kl`` parts tracked, so
    ``model.fit(x)`` needs no labels. Written out in notebook 01."""

    def __init__(self, encoder, decoder, seed=None, likelihood="bernoulli", **kwargs):
        super().__init__(**kwargs)
        likelihoods.check_likelihood(likelihood)
        _check_pair(encoder, decoder, likelihood)
        self.encoder = encoder
        self.decoder = decoder
        self.likelihood = likelihood
        self.sampling = Sampling(seed=seed)
        self.reconstruction_tracker = keras.metrics.Mean(name="reconstruction")
        self.kl_tracker = keras.metrics.Mean(name="kl")
        # nothing of its own to build: the encoder and decoder arrive built, so saved weights load at once
        self.built = True

    def call(self, x):
        z_mean, z_log_var = self.encoder(x)
        z = self.sampling([z_mean, z_log_var])
        return {"logits": self.decoder(z), "z_mean": z_mean, "z_log_var": z_log_var}

    def log_likelihood(self, x, params):
        """log p(x|z) per example, from the decoder's output ``params`` for codes z."""
        return likelihoods.log_likelihood(x, params, self.likelihood)

    def mean_image(self, params):
        """The image to show for the decoder's output (``likelihoods.shown_image``)."""
        return likelihoods.shown_image(params, self.likelihood)

    def decode(self, z, batch_size=500):
        """Decode codes ``z`` (NumPy, ``(n, latent_dim)``) to images in [0, 1] (NumPy)."""
        params = self.decoder.predict(np.asarray(z, dtype="float32"), batch_size=batch_size, verbose=0)
        return ops.convert_to_numpy(self.mean_image(params))

    def encode(self, x, batch_size=500):
        """The posterior means of ``x`` (NumPy): the codes used for plots and interpolation."""
        return self.encoder.predict(np.asarray(x, dtype="float32"), batch_size=batch_size, verbose=0)[0]

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        reconstruction = -ops.mean(self.log_likelihood(x, y_pred["logits"]))
        kl = ops.mean(losses.gaussian_kl(y_pred["z_mean"], y_pred["z_log_var"]))
        self.reconstruction_tracker.update_state(reconstruction)
        self.kl_tracker.update_state(kl)
        loss = reconstruction + kl
        for extra in self.losses:  # weight regularisers, if any were added
            loss = loss + ops.sum(extra)
        return loss

    def get_config(self):
        return {
            **super().get_config(),
            "encoder": keras.saving.serialize_keras_object(self.encoder),
            "decoder": keras.saving.serialize_keras_object(self.decoder),
            "seed": self.sampling.seed,
            "likelihood": self.likelihood,
        }

    @classmethod
    def from_config(cls, config):
        config["encoder"] = keras.saving.deserialize_keras_object(config["encoder"])
        config["decoder"] = keras.saving.deserialize_keras_object(config["decoder"])
        return cls(**config)
