"""Training throughput of M2 (``vae_utils.m2.SemiSupervisedVAE``) per Keras backend, as notebook 06 trains it.

Prints (and does not assert) seconds per epoch and peak memory of two workloads per backend, with the
hardware and versions they were measured on, so that they can be quoted:

``m2_pixels``
    M2 on binarised MNIST pixels: the first 50,000 training images, ``--n-labelled`` labels drawn with
    ``data.labelled_split(y, N, seed=0)``, a fresh stochastic binarisation at every draw.
``m1m2_features``
    The same objective on ``--feature-dim`` continuous features (``likelihood="gaussian"``, a fresh
    ``z1 ~ q(z1|x)`` at every draw through ``data.sample_gaussian``), the stacked M1+M2. The features are
    random numbers of the width of M1's active dimensions, not the codes of a trained M1: the cost of a
    step does not depend on the values. Training M1 and encoding the images are not part of the figure.

Both use notebook 06's settings, those of the paper's code (``run_2layer_ssl.py``): one hidden layer of
300 softplus units and 100 minibatches at N = 100 (1 labelled + 499 unlabelled examples each), else 500
units and 200 minibatches (N = 1000: 5 + 245); latent dimension 50; the paper's objective with
``alpha = 0.1`` and the weight prior. An epoch walks the unlabelled examples once.

Each workload is timed on two paths, with the same objective:

``after``
    notebook 06's: ``m2.encoder`` (``LabelledEncoder``: ``W_x x`` once per image, shared by the ten
    classes) and ``training.fit``'s ``steps_per_execution`` set to one epoch, which on JAX runs the
    epoch's steps as one compiled scan (``training.ScannedSteps``).
``before``
    an encoder that concatenates ``[x, y]`` (``W_x x`` computed once per class) and Keras's loop of one
    compiled call per step.

Compilation is excluded: a first epoch compiles, a second is timed with ``time.perf_counter`` (it
includes drawing the batches, which is part of a real epoch).

The floor is the time the workload's matrix products take at the machine's best float32 rate: every
dense layer's product of the paper's computation, without the sharing (10 classes per unlabelled
image), forward (M x K times K x N) and its two backward products, each timed with NumPy and with the
backend on the same shapes; the faster library's total, times the steps of an epoch. The FLOPs are
counted as 2 per multiply-add.

Memory is the peak resident set size of the process that ran the workload (``ru_maxrss``): it includes
the framework and MNIST, not only the model. Each (backend, workload) pair runs in a child process, as in
``train_throughput.py``, whose helpers this script imports.

Run from the repository root (datasets as for the notebooks, e.g. ``VAE_DATA_MIRROR``)::

    python benchmarks/m2_throughput.py
    python benchmarks/m2_throughput.py --backends jax --workloads m1m2_features --n-labelled 1000
"""

from __future__ import annotations

import argparse
import os
import sys
import time

# The shared helpers live beside this script; running it as a script already puts its folder first on
# sys.path, this makes the import independent of how it is started.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from train_throughput import (  # noqa: E402
    PEAK_RSS_LABEL,
    benchmark_parser,
    check_args,
    child_prefix,
    keras_imports,
    print_measured,
    print_not_run,
    print_table,
    run_benchmark,
    wait_for_device,
)

WORKLOADS = ("m2_pixels", "m1m2_features")
TRAIN_IMAGES = 50_000  # MNIST's first 50,000 training images; the next 10,000 are the validation set
N_CLASSES = 10
LATENT_DIM = 50
DEFAULT_FEATURE_DIM = 20  # about the number of active dimensions of a trained M1
LEARNING_RATE = 1e-3  # notebook 06's; it does not change the cost of a step
TITLE = "M2 (semi-supervised VAE) training throughput (benchmarks/m2_throughput.py)"


def paper_settings(n_labelled: int) -> dict:
    """Notebook 06's (the paper's) hidden units and minibatch sizes for ``n_labelled`` labels."""
    n_minibatches = 100 if n_labelled == 100 else 200
    return {
        "hidden": (300,) if n_labelled == 100 else (500,),
        "labelled_batch": n_labelled // n_minibatches,
        "unlabelled_batch": (TRAIN_IMAGES - n_labelled) // n_minibatches,
        "steps_per_epoch": n_minibatches,
    }


def parse_args(argv=None) -> argparse.Namespace:
    parser = benchmark_parser(
        "Print training throughput of M2 (MNIST pixels) and M1+M2 (features) per Keras backend, before "
        "and after notebook 06's speed-ups, against the floor of the machine.",
        WORKLOADS,
        steps=None,
        warmup_steps=None,
        batch="the paper's minibatches",
    )
    parser.add_argument("--n-labelled", type=int, default=100, choices=(100, 600, 1000, 3000))
    parser.add_argument("--feature-dim", type=int, default=DEFAULT_FEATURE_DIM, help="M1+M2 feature width")
    args = parser.parse_args(argv)
    check_args(parser, args, positive=())
    if args.feature_dim < 1:
        parser.error(f"--feature-dim must be positive, found {args.feature_dim}")
    return args


# --------------------------------------------------------------------------------------------------
# Child: one workload on the backend named by KERAS_BACKEND; prints one JSON line.
# --------------------------------------------------------------------------------------------------


def semi_supervised_batches(workload: str, n_labelled: int, feature_dim: int):
    """The model and the training batches of ``workload`` (see the module's docstring)."""
    import numpy as np

    from vae_utils import data, m2

    settings = paper_settings(n_labelled)
    mnist = data.load("mnist")
    y = mnist["y_train"][:TRAIN_IMAGES]
    labelled, unlabelled = data.labelled_split(y, n_labelled, seed=0)
    if workload == "m2_pixels":
        x, shape, likelihood = mnist["x_train"][:TRAIN_IMAGES], (28, 28), "bernoulli"
        transform = None
    else:
        x = np.random.default_rng(0).standard_normal((TRAIN_IMAGES, 2 * feature_dim), dtype=np.float32)
        shape, likelihood, transform = (feature_dim,), "gaussian", data.sample_gaussian
    hidden = settings["hidden"]
    model = m2.SemiSupervisedVAE(
        m2.classifier(shape, N_CLASSES, hidden=hidden),
        m2.encoder(shape, N_CLASSES, LATENT_DIM, hidden=hidden),
        m2.decoder(LATENT_DIM, N_CLASSES, shape, hidden=hidden, likelihood=likelihood),
        N_CLASSES,
        n_labelled=len(labelled),
        n_unlabelled=len(unlabelled),
        seed=0,
        likelihood=likelihood,
    )
    batches = data.SemiSupervisedBatches(
        x[labelled],
        y[labelled],
        x[unlabelled],
        settings["labelled_batch"],
        settings["unlabelled_batch"],
        seed=0,
        transform=transform or data.binarize,
        n_classes=N_CLASSES,
    )
    return model, batches


def concatenating_encoder(shape, hidden):
    """q(z|x,y) as one dense layer on ``[x, y]``: the ``before`` path (``W_x x`` once per class)."""
    import keras
    from keras import layers

    x = keras.Input(shape=shape)
    y = keras.Input(shape=(N_CLASSES,))
    h = layers.Concatenate()([layers.Flatten()(x), y])
    for units in hidden:
        h = layers.Dense(units, activation="softplus")(h)
    return keras.Model([x, y], [layers.Dense(LATENT_DIM)(h), layers.Dense(LATENT_DIM)(h)])


def time_epoch(model, batches, steps_per_execution: int) -> float:
    """Seconds of the second of two epochs (the first compiles)."""
    import keras

    model.compile(optimizer=keras.optimizers.Adam(LEARNING_RATE), steps_per_execution=steps_per_execution)
    model.fit(batches, epochs=1, verbose=0)
    wait_for_device(model)
    start = time.perf_counter()
    model.fit(batches, epochs=1, verbose=0)
    wait_for_device(model)
    return time.perf_counter() - start


def matmul_shapes(workload: str, n_labelled: int, feature_dim: int) -> list[tuple[int, int, int]]:
    """(rows, inputs, outputs) of every dense layer's product in one step, without the sharing."""
    settings = paper_settings(n_labelled)
    (hidden,) = settings["hidden"]
    data_dim = 784 if workload == "m2_pixels" else feature_dim
    out_dim = 784 if workload == "m2_pixels" else 2 * feature_dim
    labelled, unlabelled = settings["labelled_batch"], settings["unlabelled_batch"]
    shapes = []
    for rows in (labelled, unlabelled):  # q(y|x)
        shapes += [(rows, data_dim, hidden), (rows, hidden, N_CLASSES)]
    for rows in (labelled, N_CLASSES * unlabelled):  # q(z|x,y) and p(x|y,z), every class
        shapes += [(rows, data_dim + N_CLASSES, hidden), (rows, hidden, 2 * LATENT_DIM)]
        shapes += [(rows, LATENT_DIM + N_CLASSES, hidden), (rows, hidden, out_dim)]
    return shapes


def floor_seconds(shapes, repeats: int = 5) -> dict:
    """Seconds of one step's products (forward and both backward ones) with NumPy and the backend."""
    import keras
    import numpy as np
    from keras import ops

    rng = np.random.default_rng(0)
    products = []
    for m, k, n in shapes:  # Y = X W; dX = dY W^T; dW = X^T dY
        products += [(m, k, n), (m, n, k), (k, m, n)]
    arrays = [
        (rng.standard_normal((a, b), dtype=np.float32), rng.standard_normal((b, c), dtype=np.float32))
        for a, b, c in products
    ]
    backend_arrays = [(ops.convert_to_tensor(a), ops.convert_to_tensor(b)) for a, b in arrays]
    matmul = ops.matmul
    if keras.backend.backend() == "jax":
        import jax

        matmul = jax.jit(ops.matmul)

    def best(run, pairs):
        for a, b in pairs[:3]:
            ops.convert_to_numpy(run(a, b))  # warm up, compile
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            outs = [run(a, b) for a, b in pairs]
            for out in outs:
                ops.convert_to_numpy(out[:1, :1]) if hasattr(out, "shape") else None
            times.append(time.perf_counter() - start)
        return min(times)

    flops = sum(2 * a * b * c for a, b, c in products)
    return {
        "flops_per_step": flops,
        "numpy_s": best(np.matmul, arrays),
        "backend_s": best(matmul, backend_arrays),
    }


def child_main(args: argparse.Namespace) -> None:
    if not keras_imports():
        return
    from vae_utils import m2, repro

    repro.seed_everything(0)
    model, batches = semi_supervised_batches(args.workload, args.n_labelled, args.feature_dim)
    after = time_epoch(model, batches, steps_per_execution=len(batches))
    shape = model.encoder.settings["input_shape"]
    repro.seed_everything(0)
    before_model = m2.SemiSupervisedVAE(
        model.classifier,
        concatenating_encoder(tuple(shape), model.encoder.settings["hidden"]),
        model.decoder,
        N_CLASSES,
        n_labelled=model.n_labelled,
        n_unlabelled=model.n_unlabelled,
        seed=0,
        likelihood=model.likelihood,
    )
    before = time_epoch(before_model, batches, steps_per_execution=1)
    floor = floor_seconds(matmul_shapes(args.workload, args.n_labelled, args.feature_dim))
    steps = len(batches)
    floor_s = min(floor["numpy_s"], floor["backend_s"]) * steps
    print_measured(
        args.workload,
        {
            "steps_per_epoch": steps,
            "tflop_per_epoch": floor["flops_per_step"] * steps / 1e12,
            "numpy_gflops": floor["flops_per_step"] / floor["numpy_s"] / 1e9,
            "backend_gflops": floor["flops_per_step"] / floor["backend_s"] / 1e9,
            "floor_s": floor_s,
            "before_s": before,
            "after_s": after,
        },
    )


# --------------------------------------------------------------------------------------------------
# Parent: header, one child per (backend, workload), table.
# --------------------------------------------------------------------------------------------------


def child_command(workload: str, args: argparse.Namespace) -> list[str]:
    return [
        *child_prefix(__file__, workload),
        "--n-labelled",
        str(args.n_labelled),
        "--feature-dim",
        str(args.feature_dim),
    ]


def result_row(result: dict) -> list[str]:
    if result["status"] != "ok":
        return [result["backend"], result["workload"], *[result["status"]] * 8]
    floor = result["floor_s"]
    return [
        result["backend"],
        result["workload"],
        f"{result['tflop_per_epoch']:.3f}",
        f"{result['numpy_gflops']:.0f} / {result['backend_gflops']:.0f}",
        f"{floor:.2f}",
        f"{result['before_s']:.2f}",
        f"{result['before_s'] / floor:.2f}x",
        f"{result['after_s']:.2f}",
        f"{result['after_s'] / floor:.2f}x",
        f"{result['peak_rss_mib']:.0f}",
    ]


def print_results(results: list[dict], args: argparse.Namespace) -> None:
    settings = paper_settings(args.n_labelled)
    print_table(
        f"Training: model.fit, Adam, N = {args.n_labelled}: {settings['steps_per_epoch']} minibatches of "
        f"{settings['labelled_batch']} labelled + {settings['unlabelled_batch']} unlabelled, hidden "
        f"{settings['hidden'][0]}; one epoch compiles, the next is timed. Floor: the epoch's matrix "
        "products at the faster library's rate on the same shapes (see the docstring)",
        [
            "backend",
            "workload",
            "TFLOP/epoch",
            "GFLOP/s NumPy / backend",
            "floor s",
            "before s/epoch",
            "before / floor",
            "after s/epoch",
            "after / floor",
            PEAK_RSS_LABEL,
        ],
        [result_row(r) for r in results],
        text_columns=2,
    )
    if any(r["workload"] == "m1m2_features" for r in results):
        print(
            f"m1m2_features: timed on random features of width {args.feature_dim} (means and log-variances "
            "of that many M1 dimensions), not the codes of a trained M1\n"
        )
    print_not_run(results)


def main(argv=None) -> None:
    run_benchmark(parse_args(argv), TITLE, child_command, child_main, print_results)


if __name__ == "__main__":
    main()
