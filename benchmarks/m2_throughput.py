"""Training throughput of the semi-supervised VAE M2 (``models.SemiSupervisedVAE``) on each Keras backend.

Prints (and does not assert) seconds per epoch and peak memory of two workloads per backend, with the
hardware and versions they were measured on, so that they can be quoted:

``m2_pixels``
    M2 on binarised MNIST pixels: the first 50,000 training images (the 10,000 after them are the
    validation set of the protocol, unused here), N = 100 labels drawn with
    ``data.labelled_split(y, 100, seed=0)``, batches from ``data.SemiSupervisedBatches`` (a fresh
    stochastic binarisation every draw). Kingma et al.'s architecture: one hidden layer of 500 softplus
    units in the classifier, the encoder and the decoder, latent dimension 50, Bernoulli decoder.
    ``alpha = 0.1 * N_total / N_labelled = 0.1 * 50,000 / 100 = 50``.
``m1m2_features``
    The same M2 on 50-D continuous features (``likelihood="gaussian"``, ``binarize=False``), the stacked
    M1+M2 where M2 models the latent means of a trained M1. For timing, the features are random Gaussian
    numbers of shape (50,000, 50), not the codes of a trained M1: the cost of a step does not depend on
    the values. Training the M1 and encoding the images is not part of the figure.

Batches hold 100 examples, ``--labelled-batch`` labelled (default 10) and the rest unlabelled (90). An
epoch walks the 49,900 unlabelled examples once (``len(batches) = 49,900 // 90 = 554`` steps) while the
100 labelled ones are cycled. Kingma's released code (``learn_yz_x_ss.py``, run by
``run_2layer_ssl.py``, M1+M2 only) instead cuts both sets into ``n_minibatches`` equal parts: for
N = 100, 100 minibatches of 1 labelled + 499 unlabelled examples (and 300 hidden units for N = 100).
The split hardly changes the seconds per epoch: an unlabelled example costs ``K = 10`` encoder and
decoder rows (its bound is computed for every class) against 1 for a labelled one, so an epoch's cost is
dominated by the one walk over the unlabelled set, whatever the number of labelled examples per batch.

Compilation is excluded: ``--warmup-steps`` steps (default 1) of ``model.fit`` compile the train step,
then ``--steps`` steps of a second ``fit`` on the same ``SemiSupervisedBatches`` are timed with
``time.perf_counter`` and scaled to ``len(batches)`` steps. The timed steps include drawing the batches
(binarisation, one-hot labels), which is part of a real epoch; shuffling at the end of an epoch is not.

Memory is the peak resident set size of the process that ran the workload (``ru_maxrss``): it includes
the framework and MNIST (loaded for the labels in both workloads), not only the model.

Each (backend, workload) pair runs in a child process of this script, as in ``train_throughput.py``,
whose helpers this script imports.

Run from the repository root (datasets as for the notebooks, e.g. ``VAE_DATA_MIRROR``)::

    python benchmarks/m2_throughput.py
    python benchmarks/m2_throughput.py --backends jax --workloads m2_pixels --steps 20
"""

from __future__ import annotations

import argparse
import json
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
    peak_rss_mib,
    print_table,
    run_benchmark,
    wait_for_device,
)

WORKLOADS = ("m2_pixels", "m1m2_features")
BATCH_SIZE = 100  # labelled + unlabelled examples per step
DEFAULT_LABELLED_BATCH = 10
TRAIN_IMAGES = 50_000  # MNIST's first 50,000 training images; the next 10,000 are the validation set
N_LABELLED = 100
N_CLASSES = 10
LATENT_DIM = 50
HIDDEN = (500,)
FEATURE_DIM = 50
LEARNING_RATE = 3e-4  # Kingma's Adam step size (learn_yz_x_ss.py); it does not change the cost of a step
TITLE = "M2 (semi-supervised VAE) training throughput (benchmarks/m2_throughput.py)"


def steps_per_epoch(labelled_batch: int) -> int:
    """``len(SemiSupervisedBatches)``: the unlabelled set walked once, the last partial batch dropped."""
    return (TRAIN_IMAGES - N_LABELLED) // (BATCH_SIZE - labelled_batch)


def parse_args(argv=None) -> argparse.Namespace:
    parser = benchmark_parser(
        "Print training throughput of M2 (MNIST pixels) and M1+M2 (features) per Keras backend.",
        WORKLOADS,
        steps=50,
        warmup_steps=1,
        batch=f"batch {BATCH_SIZE}",
    )
    parser.add_argument(
        "--labelled-batch",
        type=int,
        default=DEFAULT_LABELLED_BATCH,
        help=f"labelled examples per batch of {BATCH_SIZE}; the rest are unlabelled "
        f"(default: {DEFAULT_LABELLED_BATCH})",
    )
    args = parser.parse_args(argv)
    check_args(parser, args)
    if not 1 <= args.labelled_batch < BATCH_SIZE:
        parser.error(f"--labelled-batch must lie in [1, {BATCH_SIZE - 1}], found {args.labelled_batch}")
    epoch = steps_per_epoch(args.labelled_batch)
    if max(args.steps, args.warmup_steps) > epoch:
        parser.error(f"--steps and --warmup-steps can be at most {epoch} (one epoch)")
    return args


# --------------------------------------------------------------------------------------------------
# Child: one workload on the backend named by KERAS_BACKEND; prints one JSON line.
# --------------------------------------------------------------------------------------------------


def m2_model(input_shape: tuple[int, ...], likelihood: str):
    from vae_utils import models

    return models.SemiSupervisedVAE(
        models.m2_classifier(input_shape, N_CLASSES, hidden=HIDDEN),
        models.m2_encoder(input_shape, N_CLASSES, LATENT_DIM, hidden=HIDDEN),
        models.m2_decoder(LATENT_DIM, N_CLASSES, input_shape, hidden=HIDDEN, likelihood=likelihood),
        N_CLASSES,
        n_total=TRAIN_IMAGES,
        n_labelled=N_LABELLED,
        seed=0,
        likelihood=likelihood,
    )


def semi_supervised_batches(workload: str, labelled_batch: int):
    """The model and the training batches of ``workload`` (see the module's docstring)."""
    import numpy as np

    from vae_utils import data

    mnist = data.load("mnist")
    y = mnist["y_train"][:TRAIN_IMAGES]
    labelled, unlabelled = data.labelled_split(y, N_LABELLED, seed=0)
    if workload == "m2_pixels":
        x = mnist["x_train"][:TRAIN_IMAGES]  # uint8, binarised by the batches
        model, binarize = m2_model(x.shape[1:], "bernoulli"), True
    else:
        x = np.random.default_rng(0).standard_normal((TRAIN_IMAGES, FEATURE_DIM), dtype=np.float32)
        model, binarize = m2_model(x.shape[1:], "gaussian"), False
    batches = data.SemiSupervisedBatches(
        x[labelled],
        y[labelled],
        x[unlabelled],
        labelled_batch,
        BATCH_SIZE - labelled_batch,
        seed=0,
        binarize=binarize,
        n_classes=N_CLASSES,
    )
    return model, batches


def time_training(model, batches, steps: int, warmup_steps: int) -> dict:
    import keras

    model.compile(optimizer=keras.optimizers.Adam(learning_rate=LEARNING_RATE))
    # The first fit traces and compiles the train step; the timed fit reuses the compiled function.
    model.fit(batches, epochs=1, steps_per_epoch=warmup_steps, verbose=0)
    wait_for_device(model)
    start = time.perf_counter()
    model.fit(batches, epochs=1, steps_per_epoch=steps, verbose=0)
    wait_for_device(model)
    seconds = time.perf_counter() - start
    epoch = len(batches)
    return {
        "steps": steps,
        "steps_per_epoch": epoch,
        "seconds": seconds,
        "seconds_per_epoch": seconds / steps * epoch,
    }


def child_main(args: argparse.Namespace) -> None:
    backend = os.environ["KERAS_BACKEND"]
    try:
        import keras  # noqa: F401  (imports the backend, which is where a missing framework shows)
    except (ImportError, OSError) as exc:  # OSError: a framework whose shared libraries are missing
        print(json.dumps({"status": "skipped", "reason": f"{type(exc).__name__}: {exc}"}))
        return
    from vae_utils import repro

    repro.seed_everything(0)
    model, batches = semi_supervised_batches(args.workload, args.labelled_batch)
    result = time_training(model, batches, args.steps, args.warmup_steps)
    print(
        json.dumps(
            {
                "status": "ok",
                "backend": backend,
                "workload": args.workload,
                "peak_rss_mib": peak_rss_mib(),
                **result,
            }
        )
    )


# --------------------------------------------------------------------------------------------------
# Parent: header, one child per (backend, workload), table.
# --------------------------------------------------------------------------------------------------


def child_command(workload: str, args: argparse.Namespace) -> list[str]:
    return [
        sys.executable,
        os.path.abspath(__file__),
        "--child",
        "--workload",
        workload,
        "--steps",
        str(args.steps),
        "--warmup-steps",
        str(args.warmup_steps),
        "--labelled-batch",
        str(args.labelled_batch),
    ]


def result_row(result: dict) -> list[str]:
    if result["status"] != "ok":
        return [result["backend"], result["workload"], *[result["status"]] * 5]
    return [
        result["backend"],
        result["workload"],
        str(result["steps"]),
        f"{result['seconds']:.2f}",
        str(result["steps_per_epoch"]),
        f"{result['seconds_per_epoch']:.1f}",
        f"{result['peak_rss_mib']:.0f}",
    ]


def print_results(results: list[dict], args: argparse.Namespace) -> None:
    unlabelled_batch = BATCH_SIZE - args.labelled_batch
    print_table(
        f"Training: model.fit, Adam, batch {args.labelled_batch} labelled + {unlabelled_batch} unlabelled; "
        f"{args.warmup_steps} warm-up step(s) untimed, then the timed steps scaled to 1 epoch "
        f"({TRAIN_IMAGES - N_LABELLED:,} unlabelled examples walked once, {N_LABELLED} labels cycled)",
        ["backend", "workload", "steps timed", "time (s)", "steps/epoch", "s/epoch", PEAK_RSS_LABEL],
        [result_row(r) for r in results],
        text_columns=2,
    )
    if any(r["workload"] == "m1m2_features" for r in results):
        print(
            f"m1m2_features: timed on random Gaussian features of shape ({TRAIN_IMAGES:,}, {FEATURE_DIM}), "
            "not the codes of a trained M1; training M1 and encoding are not included\n"
        )
    for result in results:
        if result["status"] != "ok":
            print(f"{result['status']}: {result['backend']}/{result['workload']}: {result['reason']}")


def main(argv=None) -> None:
    run_benchmark(parse_args(argv), TITLE, child_command, child_main, print_results)


if __name__ == "__main__":
    main()
