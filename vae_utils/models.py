"""The VAE's building blocks: the sampling layer, encoder and decoder builders, and the model.

Written with ``keras.ops`` and ``keras.random`` only and trained with plain ``fit``, so the same code
runs on the TensorFlow, JAX and PyTorch backends. Introduced in ``notebooks/01_vae_mnist.ipynb``.
"""

from __future__ import annotations

import math

import keras
from keras import layers, ops

from . import losses

__all__ = [
    "Sampling",
    "VAE",
    "conv_decoder",
    "conv_encoder",
    "dense_decoder",
    "dense_encoder",
]


@keras.saving.register_keras_serializable(package="vae_utils")
class Sampling(layers.Layer):
    """Draw ``z = z_mean + exp(0.5 * z_log_var) * eps`` with ``eps ~ N(0, I)``.

    The reparameterisation trick: the randomness lives in ``eps``, so gradients flow through
    ``z_mean`` and ``z_log_var``. ``exp(0.5 * log_var)`` is the standard deviation.
    """

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


def _gaussian_head(h, latent_dim):
    z_mean = layers.Dense(latent_dim, name="z_mean")(h)
    z_log_var = layers.Dense(latent_dim, name="z_log_var")(h)
    return z_mean, z_log_var


def dense_encoder(input_shape, latent_dim, hidden=(500, 500), activation="softplus"):
    """q(z|x): an MLP from images of ``input_shape`` to ``[z_mean, z_log_var]``."""
    x = keras.Input(shape=tuple(input_shape), name="x")
    h = layers.Flatten()(x)
    for units in hidden:
        h = layers.Dense(units, activation=activation)(h)
    return keras.Model(x, list(_gaussian_head(h, latent_dim)), name="encoder")


def dense_decoder(latent_dim, output_shape, hidden=(500, 500), activation="softplus"):
    """p(x|z): an MLP from ``z`` to the logits of ``output_shape`` Bernoulli pixels."""
    z = keras.Input(shape=(latent_dim,), name="z")
    h = z
    for units in reversed(hidden):
        h = layers.Dense(units, activation=activation)(h)
    h = layers.Dense(math.prod(output_shape), name="logits")(h)
    return keras.Model(z, layers.Reshape(tuple(output_shape))(h), name="decoder")


def conv_encoder(input_shape, latent_dim, filters=(32, 64), dense_units=256):
    """q(z|x): strided 3x3 convolutions (each halves the image) then a dense layer."""
    input_shape = tuple(input_shape)
    if len(input_shape) == 2:
        input_shape = (*input_shape, 1)
    x = keras.Input(shape=input_shape, name="x")
    h = x
    for n in filters:
        h = layers.Conv2D(n, 3, strides=2, padding="same", activation="relu")(h)
    h = layers.Dense(dense_units, activation="relu")(layers.Flatten()(h))
    return keras.Model(x, list(_gaussian_head(h, latent_dim)), name="encoder")


def conv_decoder(latent_dim, output_shape, filters=(64, 32), dense_units=256):
    """p(x|z): the mirror of ``conv_encoder``, ending in per-pixel logits of ``output_shape``."""
    output_shape = tuple(output_shape)
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
    return keras.Model(z, layers.Reshape(output_shape)(h), name="decoder")


@keras.saving.register_keras_serializable(package="vae_utils")
class VAE(keras.Model):
    """A VAE with a Gaussian posterior, a standard normal prior and a Bernoulli decoder.

    ``call(x)`` returns ``{"logits", "z_mean", "z_log_var"}``; ``compute_loss`` returns the negative
    ELBO averaged over the batch and tracks its two parts as the metrics ``reconstruction``
    (``-E_q[log p(x|z)]``) and ``kl``, so ``fit`` and ``evaluate`` report them separately.
    Train with ``model.compile(optimizer=...)`` and ``model.fit(x)``: no labels, no loss argument.
    """

    def __init__(self, encoder, decoder, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.encoder = encoder
        self.decoder = decoder
        self.sampling = Sampling(seed=seed)
        self.reconstruction_tracker = keras.metrics.Mean(name="reconstruction")
        self.kl_tracker = keras.metrics.Mean(name="kl")

    def call(self, x):
        z_mean, z_log_var = self.encoder(x)
        z = self.sampling([z_mean, z_log_var])
        return {"logits": self.decoder(z), "z_mean": z_mean, "z_log_var": z_log_var}

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        reconstruction = -ops.mean(losses.bernoulli_log_likelihood(x, y_pred["logits"]))
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
        }

    @classmethod
    def from_config(cls, config):
        config["encoder"] = keras.saving.deserialize_keras_object(config["encoder"])
        config["decoder"] = keras.saving.deserialize_keras_object(config["decoder"])
        return cls(**config)
