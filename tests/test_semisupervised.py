"""M2, the semi-supervised VAE: its bounds against explicit references, its batches, training and saving."""

import json
import math
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
from keras import ops
from scipy.special import log_softmax, softmax

from vae_utils import data, evaluate, m2

K, LATENT, SHAPE = 3, 2, (4, 4)


def _m2(likelihood="bernoulli", decoder=None, n_classes=K, shape=SHAPE, hidden=(8,), **kwargs):
    keras.utils.set_random_seed(0)
    kwargs.setdefault("n_labelled", 10)
    kwargs.setdefault("n_unlabelled", 60)
    return m2.SemiSupervisedVAE(
        m2.classifier(shape, n_classes, hidden=hidden),
        m2.encoder(shape, n_classes, LATENT, hidden=hidden),
        decoder or m2.decoder(LATENT, n_classes, shape, hidden=hidden, likelihood=likelihood),
        n_classes=n_classes,
        likelihood=likelihood,
        seed=0,
        **kwargs,
    )


def _inputs(likelihood, n=5, seed=1):
    rng = np.random.default_rng(seed)
    if likelihood == "bernoulli":
        return (rng.random((n, *SHAPE)) < 0.5).astype("float32")
    return rng.standard_normal((n, *SHAPE)).astype("float32")


def _reference_unlabelled(model, x, eps):
    """-U(x) from a loop over the classes, one sub-model call per class, the density in NumPy."""
    n = len(x)
    neg_elbo = np.zeros((n, K))
    for k in range(K):
        y = np.zeros((n, K), "float32")
        y[:, k] = 1.0
        z_mean, z_log_var = (ops.convert_to_numpy(t).astype(np.float64) for t in model.encoder([x, y]))
        z = z_mean + np.exp(0.5 * z_log_var) * eps[:, k]
        params = ops.convert_to_numpy(model.decoder([z.astype("float32"), y])).astype(np.float64)
        if model.likelihood == "bernoulli":
            log_px = (x * params - np.logaddexp(0.0, params)).reshape(n, -1).sum(axis=1)
        else:
            mean, log_var = np.split(params, 2, axis=-1)
            log_px = (-0.5 * (np.log(2 * np.pi) + log_var + (x - mean) ** 2 / np.exp(log_var))).reshape(n, -1)
            log_px = log_px.sum(axis=1)
        kl = 0.5 * np.sum(np.exp(z_log_var) + z_mean**2 - 1.0 - z_log_var, axis=1)
        neg_elbo[:, k] = -(log_px + np.log(1.0 / K)) + kl
    logits = ops.convert_to_numpy(model.classifier(x)).astype(np.float64)
    q = softmax(logits, axis=1)
    entropy = -np.sum(q * log_softmax(logits, axis=1), axis=1)
    return np.sum(q * neg_elbo, axis=1) - entropy, neg_elbo


@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian"])
def test_unlabelled_loss_matches_a_per_class_reference(likelihood):
    model = _m2(likelihood)
    x = _inputs(likelihood)
    eps = np.random.default_rng(2).standard_normal((len(x), K, LATENT)).astype("float32")
    expected, neg_elbo = _reference_unlabelled(model, x, eps)
    found = ops.convert_to_numpy(model.unlabelled_loss(x, eps=eps))
    np.testing.assert_allclose(found, expected, rtol=1e-5, atol=1e-4)
    all_classes = ops.convert_to_numpy(model.negative_elbo_all_classes(x, eps=eps))
    np.testing.assert_allclose(all_classes, neg_elbo, rtol=1e-5, atol=1e-4)
    # the labelled bound of class k is column k, for one-hot and for integer labels
    labels = np.arange(len(x)) % K
    for y in (labels, np.eye(K, dtype="float32")[labels]):
        labelled = ops.convert_to_numpy(model.negative_elbo(x, y, eps=eps[np.arange(len(x)), labels]))
        np.testing.assert_allclose(labelled, neg_elbo[np.arange(len(x)), labels], rtol=1e-5, atol=1e-4)


def _set_logits_bias(model, bias):
    out = model.classifier.get_layer("logits")
    out.kernel.assign(np.zeros(out.kernel.shape, "float32"))
    out.bias.assign(np.asarray(bias, "float32"))


def test_the_entropy_makes_the_uniform_classifier_best_when_every_class_explains_x_equally():
    model = _m2()
    # cut y out of q(z|x,y) and p(x|y,z): the first layers' kernel rows that read the one-hot label
    model.encoder.y_to_hidden.kernel.assign(np.zeros(model.encoder.y_to_hidden.kernel.shape, "float32"))
    dense = next(layer for layer in model.decoder.layers if isinstance(layer, keras.layers.Dense))
    kernel, bias = dense.get_weights()
    kernel[LATENT:] = 0.0
    dense.set_weights([kernel, bias])
    x = _inputs("bernoulli")
    eps = np.broadcast_to(np.random.default_rng(3).standard_normal((len(x), 1, LATENT)), (len(x), K, LATENT))
    neg_elbo = ops.convert_to_numpy(model.negative_elbo_all_classes(x, eps=eps))
    np.testing.assert_allclose(neg_elbo, np.repeat(neg_elbo[:, :1], K, axis=1), rtol=1e-6)
    _set_logits_bias(model, np.zeros(K))
    uniform = ops.convert_to_numpy(model.unlabelled_loss(x, eps=eps))
    np.testing.assert_allclose(uniform, neg_elbo[:, 0] - np.log(K), rtol=1e-6)  # -U = -L - log K
    _set_logits_bias(model, [8.0, 0.0, 0.0])
    peaked = ops.convert_to_numpy(model.unlabelled_loss(x, eps=eps))
    assert np.all(peaked > uniform + 0.9 * np.log(K))  # -U(peaked) ~ -L: the entropy bonus is lost


class _CountingDecoder(keras.Model):
    """Wraps a decoder and records the number of rows of every call."""

    def __init__(self, decoder, **kwargs):
        super().__init__(**kwargs)
        self.decoder = decoder
        self.rows = []

    def call(self, inputs):
        self.rows.append(int(inputs[0].shape[0]))
        return self.decoder(inputs)


def test_the_unlabelled_loss_decodes_all_classes_in_one_batched_call():
    counting = _CountingDecoder(m2.decoder(LATENT, K, SHAPE, hidden=(8,)))
    model = _m2(decoder=counting)
    x = _inputs("bernoulli", n=6)
    assert tuple(model.unlabelled_loss(x).shape) == (6,)
    assert counting.rows == [6 * K]


def test_the_constructor_names_what_it_expected_and_found():
    model = _m2()
    assert (model.alpha, model.n_total, model.weight_prior) == (0.1, 70, True)  # the paper's defaults
    with pytest.raises(ValueError, match="n_labelled must be an integer >= 1, found 0"):
        _m2(n_labelled=0)
    with pytest.raises(ValueError, match="n_unlabelled must be an integer >= 1, found 2.5"):
        _m2(n_unlabelled=2.5)
    with pytest.raises(ValueError, match="alpha must be a finite number >= 0.0, found -1.0"):
        _m2(alpha=-1)
    with pytest.raises(ValueError, match="n_classes=4 classes, found an output of last dimension 3"):
        m2.SemiSupervisedVAE(
            m2.classifier(SHAPE, K),
            m2.encoder(SHAPE, 4, LATENT),
            m2.decoder(LATENT, 4, SHAPE),
            n_classes=4,
            n_labelled=4,
            n_unlabelled=40,
        )
    with pytest.raises(ValueError, match=r"likelihood must be one of \('bernoulli', 'gaussian', 'logistic'"):
        _m2(likelihood="gauss")


def _numpy_mlp(net, inputs):
    """A Keras MLP of this package (Dense + softplus, linear heads) evaluated in float64 NumPy."""
    if isinstance(net, m2.LabelledEncoder):  # its first layer is one dense layer on [x, y], split in two
        first = [np.concatenate([net.x_to_hidden.kernel, net.y_to_hidden.kernel]), net.y_to_hidden.bias]
        hidden = [first, *(layer.get_weights() for layer in net.hidden_layers)]
        heads = [net.z_mean, net.z_log_var]
    else:
        dense = [layer for layer in net.layers if isinstance(layer, keras.layers.Dense)]
        heads = [layer for layer in dense if layer.activation is keras.activations.linear]
        hidden = [layer.get_weights() for layer in dense if layer not in heads]
    h = np.concatenate([np.asarray(v, np.float64).reshape(len(v), -1) for v in inputs], axis=1)
    for weights in hidden:
        kernel, bias = (np.asarray(w, np.float64) for w in weights)
        h = np.logaddexp(0.0, h @ kernel + bias)  # softplus
    return [h @ w.astype(np.float64) + b for w, b in (layer.get_weights() for layer in heads)]


def test_the_loss_is_the_papers_objective_computed_independently_in_numpy():
    """learn_yz_x_ss.py: f = -[(sum_l (L + beta log q(y|x)) + sum_u U) n_mb + log p(theta)] / N."""
    n_l, n_u, b_l, b_u = 12, 36, 4, 12  # three minibatches of 4 labelled + 12 unlabelled: n_mb = 3
    model = _m2(n_labelled=n_l, n_unlabelled=n_u, alpha=0.1)
    rng = np.random.default_rng(7)
    x_l, x_u = _inputs("bernoulli", n=b_l, seed=8), _inputs("bernoulli", n=b_u, seed=9)
    y_l = np.eye(K)[[0, 1, 2, 1]]
    eps_l = rng.standard_normal((b_l, LATENT))
    eps_u = rng.standard_normal((b_u, K, LATENT))

    def bound(x, y, eps):  # L(x, y) = log p(x|y,z) + log p(y) - KL, in float64
        z_mean, z_log_var = _numpy_mlp(model.encoder, [x, y])
        z = z_mean + np.exp(0.5 * z_log_var) * eps
        (logits,) = _numpy_mlp(model.decoder, [z, y])
        x_flat = x.reshape(len(x), -1)
        log_px = np.sum(x_flat * logits - np.logaddexp(0.0, logits), axis=1)
        kl = 0.5 * np.sum(np.exp(z_log_var) + z_mean**2 - 1.0 - z_log_var, axis=1)
        return log_px + np.log(1.0 / K) - kl

    def log_q(x):
        return log_softmax(_numpy_mlp(model.classifier, [x])[0], axis=1)

    n, n_mb = n_l + n_u, n_l // b_l
    beta = 0.1 * n / n_l
    labelled = bound(x_l, y_l, eps_l) + beta * np.sum(y_l * log_q(x_l), axis=1)
    bounds_u = np.stack([bound(x_u, np.eye(K)[[k] * b_u], eps_u[:, k]) for k in range(K)], axis=1)
    q_u = np.exp(log_q(x_u))
    unlabelled = np.sum(q_u * (bounds_u - np.log(q_u)), axis=1)
    kernels = [
        np.asarray(v, np.float64)
        for net in (model.classifier, model.encoder, model.decoder)
        for v in net.weights
        if v.name == "kernel"
    ]
    log_prior = sum(np.sum(-0.5 * w**2 - 0.5 * np.log(2 * np.pi)) for w in kernels)
    expected = -((labelled.sum() + unlabelled.sum()) * n_mb + log_prior) / n

    batch = {"x_labelled": x_l, "y_labelled": y_l.astype("float32"), "x_unlabelled": x_u}
    terms = model.terms(batch, eps_labelled=eps_l.astype("float32"), eps_unlabelled=eps_u.astype("float32"))
    assert float(model.objective(terms)) == pytest.approx(expected, rel=1e-5)
    # and what fit minimises is the same objective, of the batch's terms (here with the noise fixed)
    model.terms = lambda inputs: terms
    assert float(model.compute_loss(x=batch, y_pred=model(batch))) == pytest.approx(expected, rel=1e-5)
    without_prior = _m2(n_labelled=n_l, n_unlabelled=n_u, weight_prior=False)
    terms = without_prior.terms(batch, eps_labelled=eps_l, eps_unlabelled=eps_u)
    assert float(without_prior.objective(terms)) == pytest.approx(expected + log_prior / n, rel=1e-5)


def test_the_terms_of_a_batch_are_the_bounds_the_cross_entropy_and_the_hits():
    model = _m2()
    x_l, x_u = _inputs("bernoulli", n=4, seed=4), _inputs("bernoulli", n=6, seed=5)
    y_l = np.array([0, 1, 2, 1])
    batch = {"x_labelled": x_l, "y_labelled": np.eye(K, dtype="float32")[y_l], "x_unlabelled": x_u}
    y_pred = model.terms(batch)
    terms = {key: ops.convert_to_numpy(value) for key, value in y_pred.items()}
    assert {key: value.shape for key, value in terms.items()} == {
        "labelled": (4,),
        "unlabelled": (6,),
        "classification": (4,),
        "correct": (4,),
    }
    logits = ops.convert_to_numpy(model.classifier(x_l)).astype(np.float64)
    cross_entropy = -log_softmax(logits, axis=1)[np.arange(4), y_l]
    np.testing.assert_allclose(terms["classification"], cross_entropy, rtol=1e-5)
    np.testing.assert_array_equal(terms["correct"], logits.argmax(axis=1) == y_l)
    model.compute_loss(x=batch, y_pred=y_pred)
    assert float(model.classification_tracker.result()) == pytest.approx(cross_entropy.mean(), rel=1e-5)
    assert float(model.accuracy_tracker.result()) == pytest.approx(terms["correct"].mean())


# --- batches ------------------------------------------------------------------------------------------


def _indexed(n, offset=0.0):
    """Float examples whose every value is their index (plus ``offset``): each one identifiable."""
    return np.broadcast_to((np.arange(n, dtype="float32") + offset)[:, None, None], (n, *SHAPE)).copy()


def test_semi_supervised_batches_cycle_the_labels_and_walk_the_unlabelled_set_once():
    x_l, y_l, x_u = _indexed(10, offset=0.5), np.arange(10) % 5, _indexed(40, offset=100.0)
    batches = data.SemiSupervisedBatches(x_l, y_l, x_u, 4, 8, seed=0, transform=None, n_classes=5)
    assert len(batches) == 5
    orders = []
    for _ in range(2):
        seen_l, seen_u = [], []
        for i in range(len(batches)):
            batch = batches[i]
            assert set(batch) == {"x_labelled", "y_labelled", "x_unlabelled"}
            assert batch["x_labelled"].shape == (4, *SHAPE) and batch["x_unlabelled"].shape == (8, *SHAPE)
            assert batch["y_labelled"].shape == (4, 5) and batch["y_labelled"].dtype == np.float32
            labelled = (batch["x_labelled"][:, 0, 0] - 0.5).astype(int)
            np.testing.assert_array_equal(batch["y_labelled"], np.eye(5)[labelled % 5])  # labels follow x
            np.testing.assert_array_equal(batch["x_labelled"], x_l[labelled])  # float mode: untouched
            seen_l.extend(labelled)
            seen_u.extend((batch["x_unlabelled"][:, 0, 0] - 100.0).astype(int))
        # 5 batches of 4 draw the 10 labelled examples twice each; the unlabelled set exactly once
        assert np.bincount(seen_l, minlength=10).tolist() == [2] * 10
        assert sorted(seen_u) == list(range(40))
        orders.append(seen_u)
        batches.on_epoch_end()
    assert orders[0] != orders[1]  # reshuffled every epoch


def test_semi_supervised_batches_binarise_afresh_every_epoch():
    x_l = np.full((6, *SHAPE), 128, "uint8")
    x_u = np.full((32, *SHAPE), 0.5, "float32")
    batches = data.SemiSupervisedBatches(x_l, np.arange(6) % 3, x_u, 6, 16, seed=0, n_classes=3)
    first = batches[0]
    batches.on_epoch_end()
    second = batches[0]
    for key in ("x_labelled", "x_unlabelled"):
        assert set(np.unique(first[key])) <= {0.0, 1.0} and first[key].dtype == np.float32
        assert 0.3 < first[key].mean() < 0.7
        assert not np.array_equal(first[key], second[key])  # identical images, fresh binarisations
    again = data.SemiSupervisedBatches(x_l, np.arange(6) % 3, x_u, 6, 16, seed=0, n_classes=3)[0]
    np.testing.assert_array_equal(again["x_unlabelled"], first["x_unlabelled"])  # reproducible for a seed


@pytest.mark.parametrize(
    ("x_l", "y_l", "x_u", "message"),
    [
        (np.zeros((10, 4)), np.zeros(9, int), np.zeros((20, 4)), "found 10 examples and 9 labels"),
        (
            np.zeros((10, 4)),
            np.full(10, 3),
            np.zeros((20, 4)),
            r"\[0, n_classes=3\), found labels in \[3, 3\]",
        ),
        (np.zeros((10, 4)), np.zeros(10), np.zeros((20, 4)), "integer class labels of shape"),
        (np.zeros((10, 4)), np.zeros(10, int), np.zeros((20, 5)), r"found \(4,\) and \(5,\)"),
        (np.zeros((10, 4)), np.zeros(10, int), np.zeros((7, 4)), "unlabelled_batch=8 is larger than the 7"),
    ],
)
def test_semi_supervised_batches_reject_inconsistent_inputs(x_l, y_l, x_u, message):
    with pytest.raises(ValueError, match=message):
        data.SemiSupervisedBatches(x_l, y_l, x_u, 4, 8, seed=0, transform=None, n_classes=3)


# --- training and saving ------------------------------------------------------------------------------


def _toy_problem(n_classes=4, per_class=8, n_unlabelled=384, n_test=200, seed=0):
    """Binary 8x8 prototypes with 5% flip noise: a few labels per class, a few hundred unlabelled."""
    rng = np.random.default_rng(seed)
    prototypes = rng.random((n_classes, 8, 8)) < 0.5

    def draw(labels):
        x = prototypes[labels]
        return np.where(rng.random(x.shape) < 0.05, ~x, x).astype("float32")

    y_l = np.repeat(np.arange(n_classes), per_class)
    y_test = rng.integers(0, n_classes, n_test)
    return draw(y_l), y_l, draw(rng.integers(0, n_classes, n_unlabelled)), draw(y_test), y_test


def test_m2_trains_with_fit_and_classifies_held_out_data_well_above_chance():
    x_l, y_l, x_u, x_test, y_test = _toy_problem()
    keras.utils.set_random_seed(0)
    model = m2.SemiSupervisedVAE(
        m2.classifier((8, 8), 4, hidden=(32,)),
        m2.encoder((8, 8), 4, LATENT, hidden=(32,)),
        m2.decoder(LATENT, 4, (8, 8), hidden=(32,)),
        n_classes=4,
        n_labelled=len(x_l),
        n_unlabelled=len(x_u),
        weight_prior=False,
        seed=0,
    )
    before = evaluate.accuracy(model, x_test, y_test)
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    batches = data.SemiSupervisedBatches(x_l, y_l, x_u, 16, 64, seed=0, n_classes=4)
    logs = model.fit(batches, epochs=15, verbose=0).history
    assert {"loss", "labelled_loss", "unlabelled_loss", "classification_loss", "accuracy"} <= set(logs)
    n = model.n_total
    combined = np.multiply(len(x_l) / n, logs["labelled_loss"]) + np.multiply(
        len(x_u) / n, logs["unlabelled_loss"]
    )
    combined += model.alpha * np.asarray(logs["classification_loss"])
    np.testing.assert_allclose(logs["loss"], combined, rtol=1e-4)
    assert logs["loss"][-1] < logs["loss"][0]
    after = evaluate.accuracy(model, x_test, y_test)
    assert after > 0.8 > before  # chance is 0.25
    assert logs["accuracy"][-1] > 0.8
    predicted = np.argmax(model.predict(x_test, verbose=0), axis=-1)  # call(x): the classifier's logits
    np.testing.assert_array_equal(predicted, model.classify(x_test, batch_size=64))


def test_stacked_m2_with_a_gaussian_decoder_trains_on_float_features():
    rng = np.random.default_rng(0)
    centres = 3.0 * rng.standard_normal((2, 6))
    y_l, y_u = np.repeat([0, 1], 4), rng.integers(0, 2, 128)
    x_l = (centres[y_l] + 0.3 * rng.standard_normal((8, 6))).astype("float32")
    x_u = (centres[y_u] + 0.3 * rng.standard_normal((128, 6))).astype("float32")
    keras.utils.set_random_seed(0)
    model = m2.SemiSupervisedVAE(
        m2.classifier((6,), 2, hidden=(16,)),
        m2.encoder((6,), 2, LATENT, hidden=(16,)),
        m2.decoder(LATENT, 2, (6,), hidden=(16,), likelihood="gaussian"),
        n_classes=2,
        n_labelled=8,
        n_unlabelled=128,
        likelihood="gaussian",
    )
    assert tuple(model.decoder.output_shape) == (None, 12)  # a mean and a log-variance per feature
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    batches = data.SemiSupervisedBatches(x_l, y_l, x_u, 8, 32, seed=0, transform=None, n_classes=2)
    logs = model.fit(batches, epochs=4, verbose=0).history
    assert np.all(np.isfinite(logs["loss"])) and logs["loss"][-1] < logs["loss"][0]


def test_m2_saves_and_loads(tmp_path):
    model = _m2("gaussian", alpha=0.3, n_labelled=9, n_unlabelled=81, weight_prior=False)
    x = _inputs("gaussian")
    eps = np.random.default_rng(2).standard_normal((len(x), K, LATENT)).astype("float32")
    expected = ops.convert_to_numpy(model.unlabelled_loss(x, eps=eps))
    model.save(tmp_path / "m2.keras")
    loaded = keras.saving.load_model(tmp_path / "m2.keras")
    assert isinstance(loaded, m2.SemiSupervisedVAE)
    assert (loaded.n_classes, loaded.likelihood, loaded.alpha) == (K, "gaussian", pytest.approx(0.3))
    assert (loaded.n_labelled, loaded.n_unlabelled, loaded.weight_prior) == (9, 81, False)
    assert loaded.sampling.seed == 0
    np.testing.assert_allclose(ops.convert_to_numpy(loaded.unlabelled_loss(x, eps=eps)), expected, rtol=1e-6)
    np.testing.assert_array_equal(loaded.classify(x), model.classify(x))


def test_a_batch_that_is_not_a_semi_supervised_dict_is_rejected():
    model = _m2()
    with pytest.raises(ValueError, match=r"keys \('x_labelled', 'y_labelled', 'x_unlabelled'\).*missing"):
        model.terms({"x_labelled": _inputs("bernoulli"), "y_labelled": np.zeros(5, int)})
    model.compile(optimizer="adam")
    with pytest.raises(ValueError, match="trains and evaluates on dict batches"):
        model.fit(_inputs("bernoulli", n=8), epochs=1, verbose=0)


@pytest.mark.integration
def test_the_same_m2_code_trains_on_jax():
    pytest.importorskip("jax")
    script = textwrap.dedent(
        """
        import json, keras, numpy as np
        from vae_utils import data, evaluate, m2
        keras.utils.set_random_seed(0)
        rng = np.random.default_rng(0)
        prototypes = rng.random((2, 8, 8)) < 0.5
        def draw(y):
            x = prototypes[y]
            return np.where(rng.random(x.shape) < 0.05, ~x, x).astype("float32")
        y_l, y_test = np.repeat([0, 1], 8), rng.integers(0, 2, 100)
        x_l, x_u, x_test = draw(y_l), draw(rng.integers(0, 2, 256)), draw(y_test)
        model = m2.SemiSupervisedVAE(m2.classifier((8, 8), 2, hidden=(16,)),
                                     m2.encoder((8, 8), 2, 2, hidden=(16,)),
                                     m2.decoder(2, 2, (8, 8), hidden=(16,)),
                                     n_classes=2, n_labelled=16, n_unlabelled=256,
                                     alpha=1.0, weight_prior=False, seed=0)
        model.compile(optimizer=keras.optimizers.Adam(1e-2))
        batches = data.SemiSupervisedBatches(x_l, y_l, x_u, 16, 64, seed=0, n_classes=2)
        logs = model.fit(batches, epochs=4, verbose=0).history
        print(json.dumps({"backend": keras.backend.backend(), **{k: v[-1] for k, v in logs.items()},
                          "first_loss": logs["loss"][0], "alpha": model.alpha,
                          "w_l": 16 / 272, "w_u": 256 / 272,
                          "test_accuracy": evaluate.accuracy(model, x_test, y_test)}))
        """
    )
    env = {**os.environ, "KERAS_BACKEND": "jax"}
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["backend"] == "jax"
    assert np.isfinite(result["loss"]) and result["loss"] < result["first_loss"]
    expected = (
        result["w_l"] * result["labelled_loss"]
        + result["w_u"] * result["unlabelled_loss"]
        + result["alpha"] * result["classification_loss"]
    )
    assert result["loss"] == pytest.approx(expected, rel=1e-4)
    assert result["test_accuracy"] > 0.75  # chance is 0.5


def test_the_split_first_layer_of_q_z_given_x_y_is_one_dense_layer_on_the_concatenation():
    model = _m2(hidden=(8, 6))
    enc = model.encoder
    x = _inputs("bernoulli", n=7)
    y = np.eye(K, dtype="float32")[np.arange(7) % K]
    concatenated = keras.layers.Dense(8, activation="softplus")
    concatenated.build((None, math.prod(SHAPE) + K))
    concatenated.set_weights(
        [np.concatenate([enc.x_to_hidden.kernel, enc.y_to_hidden.kernel]), enc.y_to_hidden.bias]
    )
    h = concatenated(np.concatenate([x.reshape(7, -1), y], axis=1))
    for layer in enc.hidden_layers:
        h = layer(h)
    for found, expected in zip(enc([x, y]), (enc.z_mean(h), enc.z_log_var(h))):
        np.testing.assert_allclose(
            ops.convert_to_numpy(found), ops.convert_to_numpy(expected), rtol=1e-5, atol=1e-6
        )
    # W_x x once per image, shared by the classes: the same bounds as the encoder on repeated images
    eps = np.random.default_rng(4).standard_normal((7, K, LATENT)).astype("float32")
    shared = ops.convert_to_numpy(model.negative_elbo_all_classes(x, eps=eps))
    repeated = ops.convert_to_numpy(
        model.negative_elbo(
            np.repeat(x, K, axis=0), np.tile(np.eye(K, dtype="float32"), (7, 1)), eps=eps.reshape(7 * K, -1)
        )
    ).reshape(7, K)
    np.testing.assert_allclose(shared, repeated, rtol=1e-5, atol=1e-4)


def test_an_epoch_as_one_compiled_scan_takes_the_same_steps_as_keras_loop():
    """training.ScannedSteps: on JAX, steps_per_execution steps in one call, the same losses and weights."""
    x = _inputs("bernoulli", n=60)
    y = np.arange(60) % K

    def trained(steps_per_execution):
        model = _m2(n_labelled=9, n_unlabelled=51)
        model.compile(optimizer=keras.optimizers.Adam(1e-2), steps_per_execution=steps_per_execution)
        batches = data.SemiSupervisedBatches(x[:9], y[:9], x[9:], 3, 10, seed=0, n_classes=K)
        history = model.fit(batches, epochs=2, verbose=0, shuffle=False)
        return model, history.history

    (loop, loop_log), (scan, scan_log) = trained(1), trained(5)
    if keras.backend.backend() == "jax":
        assert scan.train_function.__qualname__.startswith("ScannedSteps")
    for key in ("loss", "labelled_loss", "unlabelled_loss"):
        np.testing.assert_allclose(scan_log[key], loop_log[key], rtol=1e-5)
    for a, b in zip(loop.get_weights(), scan.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
