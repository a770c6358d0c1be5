"""The VAE's building blocks: the sampling layer, encoder and decoder builders, and the model.

Written with ``keras.ops`` and ``keras.random`` only and trained with plain ``fit``, so the same code
runs on the TensorFlow, JAX and PyTorch backends. Introduced in ``notebooks/01_vae_mnist.ipynb``.
"""

from __future__ import annotations

import math

import keras
import numpy as np
from keras import layers, ops

from . import losses

#: The decoder likelihoods the VAE knows, and what the decoder outputs for each.
#: ``bernoulli``: one logit per pixel, for binary images (MNIST, notebook 01).
#: ``logistic``: a location and a log-scale per sub-pixel, for 8-bit images scaled to [0, 1] (a
#: discretised logistic, a proper probability mass over the 256 grey levels; notebook 02).
LIKELIHOODS = ("bernoulli", "logistic")


def _check_likelihood(likelihood):
    if likelihood not in LIKELIHOODS:
        raise ValueError(f"likelihood must be one of {LIKELIHOODS}, found {likelihood!r}")


def decoder_output_shape(image_shape, likelihood="bernoulli"):
    """The shape of the decoder's output for images of ``image_shape`` under ``likelihood``.

    A Bernoulli decoder outputs one logit per pixel (the image's own shape). A discretised logistic
    decoder outputs a location and a log-scale per sub-pixel, stacked on the channel axis: images must
    then have a channel axis, ``(h, w, c)``, and the output is ``(h, w, 2c)``.
    """
    _check_likelihood(likelihood)
    image_shape = tuple(image_shape)
    if likelihood == "bernoulli":
        return image_shape
    if len(image_shape) != 3:
        raise ValueError(
            "a discretised logistic decoder needs images with a channel axis (h, w, c); "
            f"found image shape {image_shape} (add one with x[..., None])"
        )
    return (*image_shape[:2], 2 * image_shape[2])


__all__ = [
    "INITIAL_LOG_SCALE",
    "LIKELIHOODS",
    "Sampling",
    "VAE",
    "conv_decoder",
    "conv_encoder",
    "dense_decoder",
    "decoder_output_shape",
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


#: The decoder's initial log-scale of every sub-pixel under a logistic likelihood: scales of exp(-3) = 0.05,
#: the spread of a blurry reconstruction around an 8-bit image in [0, 1], instead of exp(0) = 1, which
#: spreads each sub-pixel over its whole range and costs the first hundreds of steps to shrink.
INITIAL_LOG_SCALE = -3.0


def _init_log_scales(decoder, likelihood):
    """Set the output bias of the log-scales (the second half of the channels) to ``INITIAL_LOG_SCALE``."""
    if likelihood != "logistic":
        return decoder
    out = decoder.get_layer("logits")
    bias = ops.convert_to_numpy(out.bias).copy()
    params = decoder.output_shape[-1]  # 2c: c locations, then c log-scales
    bias.reshape(-1, params)[:, params // 2 :] = INITIAL_LOG_SCALE
    out.bias.assign(bias)
    return decoder


def dense_encoder(input_shape, latent_dim, hidden=(500, 500), activation="softplus"):
    """q(z|x): an MLP from images of ``input_shape`` to ``[z_mean, z_log_var]``."""
    x = keras.Input(shape=tuple(input_shape), name="x")
    h = layers.Flatten()(x)
    for units in hidden:
        h = layers.Dense(units, activation=activation)(h)
    return keras.Model(x, list(_gaussian_head(h, latent_dim)), name="encoder")


def dense_decoder(latent_dim, output_shape, hidden=(500, 500), activation="softplus", likelihood="bernoulli"):
    """p(x|z): an MLP from ``z`` to the parameters of ``likelihood`` for images of ``output_shape``.

    The output has ``decoder_output_shape(output_shape, likelihood)``: logits for ``bernoulli``,
    locations and log-scales for ``logistic``.
    """
    out_shape = decoder_output_shape(output_shape, likelihood)
    z = keras.Input(shape=(latent_dim,), name="z")
    h = z
    for units in reversed(hidden):
        h = layers.Dense(units, activation=activation)(h)
    h = layers.Dense(math.prod(out_shape), name="logits")(h)
    return _init_log_scales(keras.Model(z, layers.Reshape(out_shape)(h), name="decoder"), likelihood)


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


def conv_decoder(latent_dim, output_shape, filters=(64, 32), dense_units=256, likelihood="bernoulli"):
    """p(x|z): the mirror of ``conv_encoder``, ending in the per-pixel parameters of ``likelihood``.

    The output has ``decoder_output_shape(output_shape, likelihood)``.
    """
    output_shape = decoder_output_shape(output_shape, likelihood)
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
    return _init_log_scales(keras.Model(z, layers.Reshape(output_shape)(h), name="decoder"), likelihood)


@keras.saving.register_keras_serializable(package="vae_utils")
class VAE(keras.Model):
    """A VAE with a Gaussian posterior, a standard normal prior and a Bernoulli or logistic decoder.

    ``call(x)`` returns ``{"logits", "z_mean", "z_log_var"}`` (``logits``: the decoder's output, the
    parameters of ``likelihood``); ``compute_loss`` returns the negative ELBO averaged over the batch
    and tracks its two parts as the metrics ``reconstruction`` (``-E_q[log p(x|z)]``) and ``kl``, so
    ``fit`` and ``evaluate`` report them separately. Train with ``model.compile(optimizer=...)`` and
    ``model.fit(x)``: no labels, no loss argument. ``likelihood`` is one of ``LIKELIHOODS``; the
    decoder must have been built for it (``dense_decoder(..., likelihood=...)``).
    """

    def __init__(self, encoder, decoder, seed=None, likelihood="bernoulli", **kwargs):
        super().__init__(**kwargs)
        _check_likelihood(likelihood)
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
        if self.likelihood == "bernoulli":
            return losses.bernoulli_log_likelihood(x, params)
        loc, log_scale = ops.split(params, 2, axis=-1)
        return losses.discretized_logistic_log_likelihood(x, loc, log_scale)

    def mean_image(self, params):
        """An image in [0, 1] to show for the decoder's output: the pixel probabilities of a
        Bernoulli decoder, the (clipped) locations of a logistic one, which is each sub-pixel's mode."""
        if self.likelihood == "bernoulli":
            return ops.sigmoid(params)
        loc, _ = ops.split(params, 2, axis=-1)
        return ops.clip(loc, 0.0, 1.0)

    def decode(self, z, batch_size=500):
        """Decode codes ``z`` (NumPy, ``(n, latent_dim)``) to images in [0, 1] (NumPy)."""
        z = np.asarray(z, dtype="float32")
        out = [
            ops.convert_to_numpy(self.mean_image(self.decoder(z[i : i + batch_size])))
            for i in range(0, len(z), batch_size)
        ]
        return np.concatenate(out)

    def encode(self, x, batch_size=500):
        """The posterior means of ``x`` (NumPy): the codes used for plots and interpolation."""
        x = np.asarray(x, dtype="float32")
        out = [
            ops.convert_to_numpy(self.encoder(x[i : i + batch_size])[0]) for i in range(0, len(x), batch_size)
        ]
        return np.concatenate(out)

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


# --- M2: the semi-supervised VAE of Kingma, Rezende, Mohamed & Welling (2014) --------------------------

#: The decoder likelihoods of ``SemiSupervisedVAE``. ``bernoulli``: one logit per pixel, for binary images
#: (M2 on MNIST). ``gaussian``: a mean and a log-variance per dimension, concatenated on the last axis, for
#: continuous features (the stacked M1+M2, where M2 models the 50-D latent means of a trained M1).
M2_LIKELIHOODS = ("bernoulli", "gaussian")

#: The keys of a training batch of ``SemiSupervisedVAE`` (as ``data.SemiSupervisedBatches`` yields them).
SEMI_SUPERVISED_KEYS = ("x_labelled", "y_labelled", "x_unlabelled")


def _check_m2_likelihood(likelihood):
    if likelihood not in M2_LIKELIHOODS:
        raise ValueError(f"likelihood must be one of {M2_LIKELIHOODS}, found {likelihood!r}")


def _check_n_classes(n_classes):
    if isinstance(n_classes, bool) or not isinstance(n_classes, int | np.integer) or n_classes < 2:
        raise ValueError(f"n_classes must be an integer >= 2, found {n_classes!r}")
    return int(n_classes)


def m2_decoder_output_shape(output_shape, likelihood="bernoulli"):
    """The shape of an M2 decoder's output for data of ``output_shape`` under ``likelihood``.

    ``bernoulli``: one logit per value, the data's own shape. ``gaussian``: a mean and a log-variance per
    value, concatenated on the last axis, so ``(..., d)`` becomes ``(..., 2d)`` (``(50,)`` -> ``(100,)``).
    """
    _check_m2_likelihood(likelihood)
    output_shape = tuple(output_shape)
    if likelihood == "bernoulli":
        return output_shape
    return (*output_shape[:-1], 2 * output_shape[-1])


def m2_classifier(input_shape, n_classes, hidden=(500,), activation="softplus"):
    """q(y|x): an MLP from inputs of ``input_shape`` to the logits of ``n_classes`` classes."""
    n_classes = _check_n_classes(n_classes)
    x = keras.Input(shape=tuple(input_shape), name="x")
    h = layers.Flatten()(x)
    for units in hidden:
        h = layers.Dense(units, activation=activation)(h)
    return keras.Model(x, layers.Dense(n_classes, name="logits")(h), name="classifier")


def m2_encoder(input_shape, n_classes, latent_dim, hidden=(500,), activation="softplus"):
    """q(z|x,y): an MLP from ``[x, y_onehot]`` to ``[z_mean, z_log_var]``.

    The flattened ``x`` and the one-hot label are concatenated, ``[flatten(x), y]``, before the first
    hidden layer. Call it as ``encoder([x, y_onehot])``.
    """
    n_classes = _check_n_classes(n_classes)
    x = keras.Input(shape=tuple(input_shape), name="x")
    y = keras.Input(shape=(n_classes,), name="y_onehot")
    h = layers.Concatenate()([layers.Flatten()(x), y])
    for units in hidden:
        h = layers.Dense(units, activation=activation)(h)
    return keras.Model([x, y], list(_gaussian_head(h, latent_dim)), name="encoder")


def m2_decoder(
    latent_dim, n_classes, output_shape, hidden=(500,), activation="softplus", likelihood="bernoulli"
):
    """p(x|y,z): an MLP from ``[z, y_onehot]`` to the parameters of ``likelihood``.

    ``z`` and the one-hot label are concatenated, ``[z, y]``. The output has
    ``m2_decoder_output_shape(output_shape, likelihood)``: Bernoulli logits, or Gaussian means and
    log-variances concatenated on the last axis (their biases start at 0: unit variances). Call it as
    ``decoder([z, y_onehot])``.
    """
    n_classes = _check_n_classes(n_classes)
    out_shape = m2_decoder_output_shape(output_shape, likelihood)
    z = keras.Input(shape=(latent_dim,), name="z")
    y = keras.Input(shape=(n_classes,), name="y_onehot")
    h = layers.Concatenate()([z, y])
    for units in reversed(hidden):
        h = layers.Dense(units, activation=activation)(h)
    h = layers.Dense(math.prod(out_shape), name="logits")(h)
    return keras.Model([z, y], layers.Reshape(out_shape)(h), name="decoder")


def _output_dim(model):
    """The last dimension of a functional model's (first) output, or None if it is not known."""
    try:
        outputs = model.outputs
    except AttributeError:
        return None
    return outputs[0].shape[-1] if outputs else None


@keras.saving.register_keras_serializable(package="vae_utils")
class SemiSupervisedVAE(keras.Model):
    """M2 (Kingma et al., 2014): a VAE with a latent class ``y`` that is observed for a few examples.

    Generative model: ``p(y) = 1/K`` (uniform over ``K = n_classes``), ``p(z) = N(0, I)``,
    ``p(x|y,z)`` Bernoulli (or Gaussian) with parameters ``decoder([z, y])``. Inference model: a classifier
    ``q(y|x) = softmax(classifier(x))`` and ``q(z|x,y) = N(z_mean, exp(z_log_var))`` from
    ``encoder([x, y])``. Build the three with ``m2_classifier``, ``m2_encoder`` and ``m2_decoder``.

    Every loss below is a NEGATIVE bound, a quantity to minimise, per example, in nats.

    Labelled ``(x, y)``, with one reparameterised sample ``z = z_mean + exp(0.5 z_log_var) eps``,
    ``eps ~ N(0, I)``::

        -L(x, y) = -[log p(x|y,z) + log p(y)] + KL(q(z|x,y) || p(z))
                 = -log p(x|y,z) + log K + KL(q(z|x,y) || N(0, I))          >= -log p(x, y)

    Unlabelled ``x``: ``y`` is summed out under the classifier,
    ``U(x) = sum_y q(y|x) L(x,y) + H(q(y|x))`` with the entropy ``H(q) = -sum_y q log q >= 0``, so::

        -U(x) = sum_y q(y|x) (-L(x, y)) - H(q(y|x))
              = sum_y q(y|x) [(-L(x, y)) + log q(y|x)]                       >= -log p(x)

    The entropy is subtracted from the negative bound: it rewards a spread-out ``q(y|x)``. With the same
    ``-L`` for every class, ``-U`` is smallest, ``-L - log K``, for the uniform ``q``. ``-L(x, y)`` is
    computed for ALL ``K`` classes in one batched pass: each ``x`` is repeated ``K`` times with each one-hot
    ``y`` (``batch * K`` rows, one encoder and one decoder call) and the ``K`` bounds are weighted by
    ``q(y|x)``. Decoding once with the soft ``q(y|x)`` in place of a one-hot ``y`` is a different, wrong
    objective: ``-L`` is not linear in ``y``.

    Classification, on labelled examples only: ``alpha * (-log q(y|x))``. By default
    ``alpha = 0.1 * n_total / n_labelled`` (pass ``n_total`` and ``n_labelled``, as the paper's code does
    with ``n_total`` all training examples), or pass ``alpha`` itself.

    Loss of a batch of ``B_l`` labelled and ``B_u`` unlabelled examples, each term a per-example mean::

        loss = mean_l(-L(x, y)) + mean_u(-U(x)) + alpha * mean_l(-log q(y|x))

    How this weights the paper's objective over the whole data set,
    ``J^alpha = sum_l -L + sum_u -U + alpha' E_l[-log q(y|x)]`` with ``alpha' = 0.1 N``, N = N_l + N_u
    (``N_l`` labelled, ``N_u`` unlabelled examples). In expectation over batches the loss above is
    ``E_l[-L] + E_u[-U] + alpha E_l[-log q]``; times ``N_l``, with the default ``alpha``, it is
    ``sum_l -L + (N_l / N_u) sum_u -U + 0.1 N E_l[-log q]``: the paper's ``J^alpha``, with the same
    classification weight relative to the labelled bound, except that the unlabelled sum is scaled by
    ``N_l / N_u``. Over an epoch the labelled and the unlabelled sets get equal total weight, where the
    paper weights them ``N_l : N_u``. We use per-example means because the batches mix fixed numbers of
    labelled and unlabelled examples (the small labelled set is cycled, ``data.SemiSupervisedBatches``):
    each term's scale is then independent of ``B_l``, ``B_u`` and the size of the data set, the loss is in
    nats per example like the VAE's, and ``alpha`` is the weight of a labelled example's cross-entropy
    against its bound, as in the paper's code. The paper's exact balance would put a weight ``N_l / N_u``
    on ``mean_l(-L)`` (and on the cross-entropy); with 100 labels among 50 000 examples that makes the
    labelled terms all but vanish from each batch's gradient.

    Training batches (``fit``) are dicts with the keys of ``SEMI_SUPERVISED_KEYS``: ``x_labelled``
    ``(B_l, ...)``, ``y_labelled`` (one-hot ``(B_l, K)``, or integer labels ``(B_l,)``) and ``x_unlabelled``
    ``(B_u, ...)``, as ``data.SemiSupervisedBatches`` yields them; no targets, no loss argument:
    ``model.compile(optimizer=...)`` then ``model.fit(batches)``. ``fit`` and ``evaluate`` report ``loss``
    and the metrics ``labelled_loss`` (``mean_l -L``), ``unlabelled_loss`` (``mean_u -U``),
    ``classification_loss`` (``mean_l -log q(y|x)``, before ``alpha``) and ``accuracy`` (of the classifier
    on the labelled part of the batch).

    ``call(x)`` on an array returns the classifier's logits, so ``predict(x)`` gives class scores;
    ``classify(x)`` returns predicted labels (NumPy). On a training dict it returns the per-example terms.
    ``likelihood`` is one of ``M2_LIKELIHOODS``; the decoder must have been built for it.
    """

    def __init__(
        self,
        classifier,
        encoder,
        decoder,
        n_classes,
        alpha=None,
        n_total=None,
        n_labelled=None,
        seed=None,
        likelihood="bernoulli",
        **kwargs,
    ):
        super().__init__(**kwargs)
        _check_m2_likelihood(likelihood)
        self.n_classes = _check_n_classes(n_classes)
        found = _output_dim(classifier)
        if found is not None and found != self.n_classes:
            raise ValueError(
                f"the classifier must output logits over n_classes={self.n_classes} classes, "
                f"found an output of last dimension {found}"
            )
        self.alpha = self._resolve_alpha(alpha, n_total, n_labelled)
        self.classifier = classifier
        self.encoder = encoder
        self.decoder = decoder
        self.likelihood = likelihood
        self.sampling = Sampling(seed=seed)
        self.labelled_tracker = keras.metrics.Mean(name="labelled_loss")
        self.unlabelled_tracker = keras.metrics.Mean(name="unlabelled_loss")
        self.classification_tracker = keras.metrics.Mean(name="classification_loss")
        self.accuracy_tracker = keras.metrics.Mean(name="accuracy")
        # nothing of its own to build: the sub-models arrive built, so the model can be saved before use
        self.built = True

    @staticmethod
    def _resolve_alpha(alpha, n_total, n_labelled):
        counts_given = n_total is not None or n_labelled is not None
        if alpha is not None:
            if counts_given:
                raise ValueError(
                    "give either alpha or n_total and n_labelled (alpha = 0.1 * n_total / n_labelled), "
                    f"not both; found alpha={alpha!r}, n_total={n_total!r}, n_labelled={n_labelled!r}"
                )
            if isinstance(alpha, bool) or not isinstance(alpha, int | float | np.number):
                raise ValueError(f"alpha must be a non-negative number, found {alpha!r}")
            if not (math.isfinite(alpha) and alpha >= 0):
                raise ValueError(f"alpha must be a finite non-negative number, found {alpha!r}")
            return float(alpha)
        if n_total is None or n_labelled is None:
            raise ValueError(
                "the classification weight needs alpha, or n_total and n_labelled for the default "
                f"alpha = 0.1 * n_total / n_labelled; found n_total={n_total!r}, n_labelled={n_labelled!r}"
            )
        for name, value in (("n_total", n_total), ("n_labelled", n_labelled)):
            if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
                raise ValueError(f"{name} must be a positive integer, found {value!r}")
        if n_labelled > n_total:
            raise ValueError(
                f"n_labelled must not exceed n_total (all training examples, labelled or not); "
                f"found n_labelled={n_labelled} > n_total={n_total}"
            )
        return 0.1 * float(n_total) / float(n_labelled)

    # --- the pieces of the bound --------------------------------------------------------------------

    def log_likelihood(self, x, params):
        """log p(x|y,z) per example, from the decoder's output ``params``."""
        if self.likelihood == "bernoulli":
            return losses.bernoulli_log_likelihood(x, params)
        mean, log_var = ops.split(params, 2, axis=-1)
        return losses.gaussian_log_likelihood(x, mean, log_var)

    def _one_hot(self, y):
        """One-hot labels ``(batch, K)`` from one-hot or integer labels."""
        if len(y.shape) == 2:
            if y.shape[-1] is not None and y.shape[-1] != self.n_classes:
                raise ValueError(
                    f"one-hot labels must have n_classes={self.n_classes} columns, found shape {y.shape}"
                )
            return ops.cast(y, self.compute_dtype)
        if len(y.shape) == 1:
            return ops.one_hot(ops.cast(y, "int32"), self.n_classes, dtype=self.compute_dtype)
        raise ValueError(
            f"labels must be one-hot (batch, {self.n_classes}) or integers (batch,), found {y.shape}"
        )

    def negative_elbo(self, x, y_onehot, eps=None):
        """``-L(x, y)`` per example, shape ``(batch,)``: the negative labelled bound (see the class).

        ``z = z_mean + exp(0.5 * z_log_var) * eps`` with ``eps`` drawn by the model's sampling layer, or
        the given standard normal ``eps`` of shape ``(batch, latent_dim)`` (for a deterministic value).
        """
        x = ops.convert_to_tensor(x, dtype=self.compute_dtype)
        y_onehot = self._one_hot(ops.convert_to_tensor(y_onehot))
        z_mean, z_log_var = self.encoder([x, y_onehot])
        if eps is None:
            z = self.sampling([z_mean, z_log_var])
        else:
            z = z_mean + ops.exp(0.5 * z_log_var) * ops.cast(eps, z_mean.dtype)
        params = self.decoder([z, y_onehot])
        log_py = -math.log(self.n_classes)
        return -(self.log_likelihood(x, params) + log_py) + losses.gaussian_kl(z_mean, z_log_var)

    def negative_elbo_all_classes(self, x, eps=None):
        """``-L(x, y)`` for every class ``y``, shape ``(batch, K)``, in one batched pass.

        Each example is repeated ``K`` times, example-major (row ``i * K + k`` is ``x_i`` with class
        ``k``), so the encoder and the decoder are each called once on ``batch * K`` rows. ``eps``: optional
        standard normal noise of shape ``(batch, K, latent_dim)``, ``eps[i, k]`` for ``(x_i, k)``.
        """
        x = ops.convert_to_tensor(x, dtype=self.compute_dtype)
        k = self.n_classes
        batch = ops.shape(x)[0]
        x_rep = ops.repeat(x, k, axis=0)
        y_rep = ops.tile(ops.eye(k, dtype=self.compute_dtype), (batch, 1))
        if eps is not None:
            eps = ops.reshape(ops.convert_to_tensor(eps, dtype=self.compute_dtype), (batch * k, -1))
        return ops.reshape(self.negative_elbo(x_rep, y_rep, eps=eps), (batch, k))

    def unlabelled_loss(self, x, eps=None):
        """``-U(x) = sum_y q(y|x) (-L(x, y)) - H(q(y|x))`` per example, shape ``(batch,)``.

        ``eps`` as in ``negative_elbo_all_classes``.
        """
        log_q = ops.log_softmax(self.classifier(x), axis=-1)
        return self._unlabelled_from(self.negative_elbo_all_classes(x, eps=eps), log_q)

    @staticmethod
    def _unlabelled_from(neg_elbos, log_q):
        # sum_y q (-L) - H(q) = sum_y q (-L + log q)
        return ops.sum(ops.exp(log_q) * (neg_elbos + log_q), axis=-1)

    # --- Keras API --------------------------------------------------------------------------------

    def _check_batch(self, inputs):
        missing = [key for key in SEMI_SUPERVISED_KEYS if key not in inputs]
        if missing:
            raise ValueError(
                f"a SemiSupervisedVAE training batch is a dict with keys {SEMI_SUPERVISED_KEYS}; "
                f"found keys {tuple(inputs)} (missing {tuple(missing)})"
            )

    def call(self, inputs):
        if not isinstance(inputs, dict):
            return self.classifier(inputs)
        self._check_batch(inputs)
        x_l = ops.convert_to_tensor(inputs["x_labelled"], dtype=self.compute_dtype)
        y_l = self._one_hot(ops.convert_to_tensor(inputs["y_labelled"]))
        x_u = ops.convert_to_tensor(inputs["x_unlabelled"], dtype=self.compute_dtype)
        logits_l = self.classifier(x_l)
        log_q_l = ops.log_softmax(logits_l, axis=-1)
        correct = ops.cast(ops.argmax(logits_l, axis=-1) == ops.argmax(y_l, axis=-1), self.compute_dtype)
        return {
            "labelled": self.negative_elbo(x_l, y_l),
            "unlabelled": self.unlabelled_loss(x_u),
            "classification": -ops.sum(y_l * log_q_l, axis=-1),
            "correct": correct,
        }

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        if not isinstance(y_pred, dict):
            raise ValueError(
                f"SemiSupervisedVAE trains and evaluates on dict batches with keys {SEMI_SUPERVISED_KEYS} "
                "(data.SemiSupervisedBatches); found a batch of type "
                f"{type(x).__name__}. Use classify or evaluate.accuracy to score the classifier."
            )
        labelled = ops.mean(y_pred["labelled"])
        unlabelled = ops.mean(y_pred["unlabelled"])
        classification = ops.mean(y_pred["classification"])
        self.labelled_tracker.update_state(labelled)
        self.unlabelled_tracker.update_state(unlabelled)
        self.classification_tracker.update_state(classification)
        self.accuracy_tracker.update_state(ops.mean(y_pred["correct"]))
        loss = labelled + unlabelled + self.alpha * classification
        for extra in self.losses:  # weight regularisers, if any were added
            loss = loss + ops.sum(extra)
        return loss

    def classify(self, x, batch_size=500):
        """Predicted labels ``argmax_y q(y|x)`` of ``x`` (NumPy integers, shape ``(n,)``)."""
        if isinstance(batch_size, bool) or not isinstance(batch_size, int | np.integer) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, found {batch_size!r}")
        x = np.asarray(x, dtype="float32")
        out = [
            np.argmax(ops.convert_to_numpy(self.classifier(x[i : i + batch_size])), axis=-1)
            for i in range(0, len(x), batch_size)
        ]
        return np.concatenate(out) if out else np.zeros((0,), dtype=np.int64)

    def get_config(self):
        return {
            **super().get_config(),
            "classifier": keras.saving.serialize_keras_object(self.classifier),
            "encoder": keras.saving.serialize_keras_object(self.encoder),
            "decoder": keras.saving.serialize_keras_object(self.decoder),
            "n_classes": self.n_classes,
            "alpha": self.alpha,
            "seed": self.sampling.seed,
            "likelihood": self.likelihood,
        }

    @classmethod
    def from_config(cls, config):
        for key in ("classifier", "encoder", "decoder"):
            config[key] = keras.saving.deserialize_keras_object(config[key])
        return cls(**config)


__all__ += [
    "M2_LIKELIHOODS",
    "SEMI_SUPERVISED_KEYS",
    "SemiSupervisedVAE",
    "m2_classifier",
    "m2_decoder",
    "m2_decoder_output_shape",
    "m2_encoder",
]
