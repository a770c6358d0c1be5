"""M2 of Kingma, Rezende, Mohamed & Welling (2014): the semi-supervised VAE and its builders.

The objective, as the paper's code (``learn_yz_x_ss.py``) computes it, per training example in nats, for
``N = N_l + N_u`` training examples and a batch of labelled and unlabelled ones::

    loss = (N_l/N) mean_l(-L(x,y)) + (N_u/N) mean_u(-U(x)) + alpha mean_l(-log q(y|x)) - log p(theta)/N

``-L(x,y) = -log p(x|y,z) + log K + KL(q(z|x,y) || N(0,I))`` with one sample of z;
``-U(x) = sum_y q(y|x) (-L(x,y) + log q(y|x))``, every class in one batched pass; ``log p(theta)`` a
standard normal prior on every weight matrix (``weight_prior=True``); ``alpha = 0.1`` in the paper.
``SemiSupervisedVAE.fit`` takes the paper's dict batches (``data.SemiSupervisedBatches``); ``call`` returns
the classifier's logits. Its likelihoods (``bernoulli`` for MNIST, ``gaussian`` for M1's features) come
from the table the VAE uses (``likelihoods``).

Introduced, and its objective derived term by term, in ``notebooks/06_semi_supervised_m2.ipynb``.
"""

from __future__ import annotations

import math

import keras
import numpy as np
from keras import layers, ops

from . import likelihoods, losses
from .checks import finite_number, positive_int
from .data.batches import SEMI_SUPERVISED_KEYS
from .models import Sampling, gaussian_head
from .training import ScannedSteps

__all__ = ["LabelledEncoder", "SemiSupervisedVAE", "classifier", "decoder", "encoder"]


def classifier(input_shape, n_classes, hidden=(500,), activation="softplus"):
    """q(y|x): an MLP from inputs of ``input_shape`` to ``n_classes`` logits. Introduced in notebook 06."""
    n_classes = positive_int("n_classes", n_classes, minimum=2)
    x = keras.Input(shape=tuple(input_shape), name="x")
    h = layers.Flatten()(x)
    for units in hidden:
        h = layers.Dense(units, activation=activation)(h)
    return keras.Model(x, layers.Dense(n_classes, name="logits")(h), name="classifier")


@keras.saving.register_keras_serializable(package="vae_utils")
class LabelledEncoder(keras.Model):
    """q(z|x,y): an MLP on ``[x, y_onehot]`` whose first layer is split, ``W_x x + W_y y + b``, so the
    unlabelled bound computes ``W_x x`` once per image, not per class. Introduced in notebook 06."""

    def __init__(self, input_shape, n_classes, latent_dim, hidden=(500,), activation="softplus", **kwargs):
        super().__init__(**kwargs)
        hidden = list(hidden)
        if not hidden:
            raise ValueError("q(z|x,y) needs at least one hidden layer, found hidden=()")
        self.settings = {
            "input_shape": list(input_shape),
            "n_classes": positive_int("n_classes", n_classes, minimum=2),
            "latent_dim": positive_int("latent_dim", latent_dim),
            "hidden": hidden,
            "activation": activation,
        }
        self.flatten = layers.Flatten()
        self.x_to_hidden = layers.Dense(hidden[0], use_bias=False, name="x_to_hidden")
        self.y_to_hidden = layers.Dense(hidden[0], name="y_to_hidden")
        self.activation = keras.activations.get(activation)
        self.hidden_layers = [layers.Dense(units, activation=activation) for units in hidden[1:]]
        self.z_mean, self.z_log_var = gaussian_head(latent_dim)
        self([np.zeros((1, *input_shape), "float32"), np.zeros((1, n_classes), "float32")])

    def first_layer(self, x):
        """``W_x x``, once per image, ``(batch, hidden[0])``."""
        return self.x_to_hidden(self.flatten(x))

    def from_first_layer(self, h_x, y_onehot):
        """``[z_mean, z_log_var]`` from ``W_x x`` and the labels."""
        h = self.activation(h_x + self.y_to_hidden(y_onehot))
        for layer in self.hidden_layers:
            h = layer(h)
        return [self.z_mean(h), self.z_log_var(h)]

    def call(self, inputs):
        x, y_onehot = inputs
        return self.from_first_layer(self.first_layer(x), y_onehot)

    def get_config(self):
        return {**super().get_config(), **self.settings}


def encoder(input_shape, n_classes, latent_dim, hidden=(500,), activation="softplus"):
    """q(z|x,y): ``LabelledEncoder``, from ``[x, y_onehot]`` to ``[z_mean, z_log_var]``.

    Introduced in notebook 06.
    """
    return LabelledEncoder(input_shape, n_classes, latent_dim, hidden, activation, name="encoder")


def decoder(
    latent_dim, n_classes, output_shape, hidden=(500,), activation="softplus", likelihood="bernoulli"
):
    """p(x|y,z): an MLP from ``[z, y_onehot]`` to ``decoder_output_shape(output_shape, likelihood)``.

    Introduced in notebook 06.
    """
    n_classes = positive_int("n_classes", n_classes, minimum=2)
    out_shape = likelihoods.decoder_output_shape(output_shape, likelihood)
    z = keras.Input(shape=(latent_dim,), name="z")
    y = keras.Input(shape=(n_classes,), name="y_onehot")
    h = layers.Concatenate()([z, y])
    for units in reversed(hidden):
        h = layers.Dense(units, activation=activation)(h)
    h = layers.Dense(math.prod(out_shape), name="logits")(h)
    return keras.Model([z, y], layers.Reshape(out_shape)(h), name="decoder")


def _check_networks(classifier, encoder, decoder, n_classes):
    for name, net in (("classifier", classifier), ("encoder", encoder), ("decoder", decoder)):
        if not isinstance(net, keras.layers.Layer):
            raise TypeError(f"{name} must be a Keras model (m2.{name}(...)), found {type(net).__name__}")
    outputs = getattr(classifier, "outputs", None)
    found = outputs[0].shape[-1] if outputs else None
    if found is not None and found != n_classes:
        raise ValueError(
            f"the classifier must output logits over n_classes={n_classes} classes, "
            f"found an output of last dimension {found}"
        )


@keras.saving.register_keras_serializable(package="vae_utils")
class SemiSupervisedVAE(ScannedSteps, keras.Model):
    """M2 with the objective of the paper's code (``learn_yz_x_ss.py``), per training example in nats;
    the terms and their weights are in this module's docstring. Written out in notebook 06."""

    def __init__(
        self,
        classifier,
        encoder,
        decoder,
        n_classes,
        n_labelled,
        n_unlabelled,
        alpha=0.1,
        weight_prior=True,
        seed=None,
        likelihood="bernoulli",
        **kwargs,
    ):
        super().__init__(**kwargs)
        likelihoods.check_likelihood(likelihood)
        self.n_classes = positive_int("n_classes", n_classes, minimum=2)
        _check_networks(classifier, encoder, decoder, self.n_classes)
        self.n_labelled = positive_int("n_labelled", n_labelled)
        self.n_unlabelled = positive_int("n_unlabelled", n_unlabelled)
        self.alpha = finite_number("alpha", alpha, minimum=0.0)
        self.weight_prior = bool(weight_prior)
        self.classifier, self.encoder, self.decoder = classifier, encoder, decoder
        self.likelihood, self.sampling = likelihood, Sampling(seed=seed)
        self.labelled_tracker = keras.metrics.Mean(name="labelled_loss")
        self.unlabelled_tracker = keras.metrics.Mean(name="unlabelled_loss")
        self.classification_tracker = keras.metrics.Mean(name="classification_loss")
        self.accuracy_tracker = keras.metrics.Mean(name="accuracy")
        self.built = True  # the sub-models arrive built, so saved weights load at once

    @property
    def n_total(self):
        return self.n_labelled + self.n_unlabelled

    def log_likelihood(self, x, params):
        """log p(x|y,z) per example, from the decoder's output ``params``."""
        return likelihoods.log_likelihood(x, params, self.likelihood)

    def _one_hot(self, y):
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
        """``-L(x, y)`` per example; ``eps`` ``(batch, latent_dim)`` fixes the noise of z if given."""
        x = ops.convert_to_tensor(x, dtype=self.compute_dtype)
        y_onehot = self._one_hot(ops.convert_to_tensor(y_onehot))
        return self._negative_elbo(x, y_onehot, self.encoder([x, y_onehot]), eps)

    def _negative_elbo(self, x, y_onehot, posterior, eps):
        z_mean, z_log_var = posterior
        if eps is None:
            z = self.sampling([z_mean, z_log_var])
        else:
            z = z_mean + ops.exp(0.5 * z_log_var) * ops.cast(eps, z_mean.dtype)
        log_p_y = -math.log(self.n_classes)
        log_p_x = self.log_likelihood(x, self.decoder([z, y_onehot]))
        return -(log_p_x + log_p_y) + losses.gaussian_kl(z_mean, z_log_var)

    def negative_elbo_all_classes(self, x, eps=None):
        """``-L(x, y)`` for every class, ``(batch, K)``, in one pass (``eps``: optional noise
        ``(batch, K, latent_dim)``); ``W_x x`` is computed once per image."""
        x = ops.convert_to_tensor(x, dtype=self.compute_dtype)
        k = self.n_classes
        batch = ops.shape(x)[0]
        y_rep = ops.tile(ops.eye(k, dtype=self.compute_dtype), (batch, 1))
        if eps is not None:
            eps = ops.reshape(ops.convert_to_tensor(eps, dtype=self.compute_dtype), (batch * k, -1))
        if isinstance(self.encoder, LabelledEncoder):
            h_x = ops.repeat(self.encoder.first_layer(x), k, axis=0)
            posterior = self.encoder.from_first_layer(h_x, y_rep)
        else:
            posterior = self.encoder([ops.repeat(x, k, axis=0), y_rep])
        return ops.reshape(self._negative_elbo(ops.repeat(x, k, axis=0), y_rep, posterior, eps), (batch, k))

    def unlabelled_loss(self, x, eps=None):
        """``-U(x) = sum_y q(y|x) (-L(x, y) + log q(y|x))`` per example."""
        log_q = ops.log_softmax(self.classifier(x), axis=-1)
        return ops.sum(ops.exp(log_q) * (self.negative_elbo_all_classes(x, eps=eps) + log_q), axis=-1)

    def negative_log_weight_prior(self):
        """``-log p(theta)`` under N(0, 1) on every weight matrix of the three networks (0 if disabled)."""
        if not self.weight_prior:
            return ops.convert_to_tensor(0.0, dtype=self.compute_dtype)
        kernels = [
            v
            for net in (self.classifier, self.encoder, self.decoder)
            for v in net.weights
            if "kernel" in v.name
        ]
        size = sum(math.prod(v.shape) for v in kernels)
        return 0.5 * sum(ops.sum(ops.square(v)) for v in kernels) + 0.5 * size * math.log(2 * math.pi)

    def terms(self, inputs, eps_labelled=None, eps_unlabelled=None):
        """The per-example terms of a training batch: ``labelled`` (-L), ``unlabelled`` (-U),
        ``classification`` (-log q(y|x)) and ``correct`` (1 where argmax q(y|x) is the label)."""
        missing = [key for key in SEMI_SUPERVISED_KEYS if key not in inputs]
        if missing:
            raise ValueError(
                f"a training batch is a dict with keys {SEMI_SUPERVISED_KEYS}; found keys "
                f"{tuple(inputs)} (missing {tuple(missing)})"
            )
        x_l = ops.convert_to_tensor(inputs["x_labelled"], dtype=self.compute_dtype)
        y_l = self._one_hot(ops.convert_to_tensor(inputs["y_labelled"]))
        x_u = ops.convert_to_tensor(inputs["x_unlabelled"], dtype=self.compute_dtype)
        logits_l = self.classifier(x_l)
        correct = ops.argmax(logits_l, axis=-1) == ops.argmax(y_l, axis=-1)
        return {
            "labelled": self.negative_elbo(x_l, y_l, eps=eps_labelled),
            "unlabelled": self.unlabelled_loss(x_u, eps=eps_unlabelled),
            "classification": -ops.sum(y_l * ops.log_softmax(logits_l, axis=-1), axis=-1),
            "correct": ops.cast(correct, self.compute_dtype),
        }

    def objective(self, terms):
        """The loss of one batch from its ``terms`` (see the class docstring)."""
        n = float(self.n_total)
        return (
            (self.n_labelled / n) * ops.mean(terms["labelled"])
            + (self.n_unlabelled / n) * ops.mean(terms["unlabelled"])
            + self.alpha * ops.mean(terms["classification"])
            + self.negative_log_weight_prior() / n
        )

    def call(self, inputs):
        """q(y|x)'s logits: of ``inputs``, or of a training batch's labelled images."""
        return self.classifier(inputs["x_labelled"] if isinstance(inputs, dict) else inputs)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        if not isinstance(x, dict):
            raise ValueError(
                f"SemiSupervisedVAE trains and evaluates on dict batches with keys {SEMI_SUPERVISED_KEYS} "
                f"(SemiSupervisedBatches); found a batch of type {type(x).__name__}. Use classify or "
                "evaluate.accuracy to score the classifier."
            )
        y_pred = self.terms(x)
        self.labelled_tracker.update_state(ops.mean(y_pred["labelled"]))
        self.unlabelled_tracker.update_state(ops.mean(y_pred["unlabelled"]))
        self.classification_tracker.update_state(ops.mean(y_pred["classification"]))
        self.accuracy_tracker.update_state(ops.mean(y_pred["correct"]))
        loss = self.objective(y_pred)
        for extra in self.losses:
            loss = loss + ops.sum(extra)
        return loss

    def classify(self, x, batch_size=500):
        """Predicted labels ``argmax_y q(y|x)`` (NumPy integers, ``(n,)``)."""
        batch_size = positive_int("batch_size", batch_size)
        x = np.asarray(x, dtype="float32")
        if not len(x):
            return np.zeros((0,), dtype=np.int64)
        return np.argmax(self.classifier.predict(x, batch_size=batch_size, verbose=0), axis=-1)

    def get_config(self):
        return {
            **super().get_config(),
            **{
                key: keras.saving.serialize_keras_object(getattr(self, key))
                for key in ("classifier", "encoder", "decoder")
            },
            "n_classes": self.n_classes,
            "n_labelled": self.n_labelled,
            "n_unlabelled": self.n_unlabelled,
            "alpha": self.alpha,
            "weight_prior": self.weight_prior,
            "seed": self.sampling.seed,
            "likelihood": self.likelihood,
        }

    @classmethod
    def from_config(cls, config):
        for key in ("classifier", "encoder", "decoder"):
            config[key] = keras.saving.deserialize_keras_object(config[key])
        return cls(**config)
