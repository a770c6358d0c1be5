"""Training throughput of notebook 03's CIFAR-10 VAEs (c) and (d) per Keras backend, against the machine.

Prints (and does not assert) seconds per epoch of the two models that take most of the notebook's full
run, with the hardware and versions they were measured on, so that they can be quoted:

``mix``
    VAE (c): the 16 x 16 x 4 spatial code, the PixelCNN++ mixture of 5 logistics, free bits.
``two_level``
    VAE (d): the same with a global code z2 above the spatial one (the bottom-up and top-down networks).
``likelihood``
    ``pixel_mixture.log_likelihood`` alone, forward and gradient with respect to the decoder's output, on
    the shapes of one batch: the share of a step that no convolution does.

The models are not copied here: the script executes the cells of ``notebooks/03_cifar_horse_car_interpolation
.ipynb`` that define them (imports, parameters, networks and model classes), so it measures what the
notebook trains. A step is Keras's ``train_on_batch`` at the notebook's batch of 32 random images in
[0, 1] (the cost does not depend on the values); ``--warmup-steps`` steps compile, ``--steps`` are timed,
and an epoch is their median times the notebook's 312 steps (9,995 training images).

The floor is the epoch's convolution and dense arithmetic at the machine's float32 matrix-multiply rate
(NumPy, as in ``train_throughput.py``, whose helpers this script imports): three forward passes' FLOPs
per image (the forward pass and twice its multiply-adds backwards) times 9,995 images. The likelihood's
elementwise work is not in the floor; its own row shows what it costs.

Run from the repository root::

    python benchmarks/cifar_throughput.py
    python benchmarks/cifar_throughput.py --backends tensorflow --workloads mix two_level
"""

from __future__ import annotations

import contextlib
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from train_throughput import (  # noqa: E402
    PEAK_RSS_LABEL,
    benchmark_parser,
    check_args,
    child_prefix,
    forward_flops,
    keras_imports,
    matmul_gflops,
    print_measured,
    print_not_run,
    print_table,
    run_benchmark,
)

WORKLOADS = ("mix", "two_level", "likelihood")
NOTEBOOK = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
    "notebooks",
    "03_cifar_horse_car_interpolation.ipynb",
)
# the notebook's cells that define the two models, by how each begins
CELLS = (
    "# The code runs on any Keras 3 backend",
    "SMOKE = False",
    "Z_DIM = int(np.prod(LATENT_SHAPE))",
    "class FreeBitsVAE(models.VAE):",
    "def bottom_up():",
    "# NBVAL_CHECK_OUTPUT\nLOG_2PI",
)
TRAIN_IMAGES = 9_995  # CIFAR-10's training horses and cars
BATCH_SIZE = 32
STEPS_PER_EPOCH = TRAIN_IMAGES // BATCH_SIZE  # data.ShuffledBatches drops the last partial batch
TITLE = "Notebook 03's CIFAR-10 VAEs, training throughput (benchmarks/cifar_throughput.py)"


def parse_args(argv=None):
    parser = benchmark_parser(
        "Print the training throughput of notebook 03's VAEs (c) and (d) per Keras backend.",
        WORKLOADS,
        steps=20,
        warmup_steps=3,
        batch=f"batch {BATCH_SIZE}",
    )
    args = parser.parse_args(argv)
    check_args(parser, args)
    return args


def notebook_models() -> dict:
    """The namespace of notebook 03 after its model-defining cells ran (their prints go to stderr)."""
    import nbformat

    cells = [c.source for c in nbformat.read(NOTEBOOK, as_version=4).cells if c.cell_type == "code"]
    namespace: dict = {"__name__": "__main__"}
    for start in CELLS:
        (source,) = [s for s in cells if s.startswith(start)]
        with contextlib.redirect_stdout(sys.stderr):
            exec(compile(source, f"notebook 03: {start.splitlines()[-1]}", "exec"), namespace)
    return namespace


def time_steps(step, warmup: int, steps: int) -> float:
    """The median seconds of ``step()`` over ``steps`` calls after ``warmup`` untimed ones."""
    for _ in range(warmup):
        step()
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def child_main(args) -> None:
    if not keras_imports():
        return
    import keras
    import numpy as np

    nb = notebook_models()
    x = np.random.default_rng(0).random((BATCH_SIZE, 32, 32, 3), dtype=np.float32)
    record = {}
    if args.workload == "likelihood":
        params = np.random.default_rng(1).normal(0, 0.1, (BATCH_SIZE, 32, 32, 50)).astype("float32")
        model = likelihood_model(params)
        model.compile(optimizer=keras.optimizers.SGD(0.0))
        record["flop_per_image"] = 0
    else:
        nb["repro"].seed_everything(0)
        model = nb["build_vae_mix"]() if args.workload == "mix" else nb["TwoLevelVAE"](seed=0)
        model.compile(optimizer=keras.optimizers.Adam(1e-3))
        parts = (
            (model.encoder, model.decoder)
            if args.workload == "mix"
            else (model.bottom_up, model.top_down, model.posterior_z1, model.decoder)
        )
        record["flop_per_image"] = sum(forward_flops(p) for p in parts)
    step_s = time_steps(lambda: model.train_on_batch(x), args.warmup_steps, args.steps)
    record.update(step_s=step_s, epoch_s=step_s * STEPS_PER_EPOCH)
    print_measured(args.workload, record)


def likelihood_model(batch_params):
    """A Keras model whose one weight is a batch of decoder outputs and whose loss is the mixture's
    negative log-likelihood of the batch: a ``train_on_batch`` is the likelihood's forward and gradient."""
    import keras
    from keras import ops

    from vae_utils import pixel_mixture

    class Likelihood(keras.Model):
        def __init__(self):
            super().__init__()
            self.params = keras.Variable(batch_params)
            self.built = True

        def call(self, x):
            return x

        def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
            return -ops.mean(pixel_mixture.log_likelihood(x, ops.convert_to_tensor(self.params)))

    return Likelihood()


def child_command(workload: str, args) -> list[str]:
    return [
        *child_prefix(__file__, workload),
        "--steps",
        str(args.steps),
        "--warmup-steps",
        str(args.warmup_steps),
    ]


def print_results(results: list[dict], args) -> None:
    gflops = matmul_gflops()
    rows = []
    for r in results:
        if r["status"] != "ok":
            rows.append([r["backend"], r["workload"], *[r["status"]] * 6])
            continue
        floor = 3 * r["flop_per_image"] * TRAIN_IMAGES / (gflops * 1e9)
        rows.append(
            [
                r["backend"],
                r["workload"],
                f"{r['flop_per_image'] / 1e6:.1f}",
                f"{r['step_s'] * 1000:.0f}",
                f"{r['epoch_s']:.1f}",
                f"{floor:.1f}" if floor else "-",
                f"{r['epoch_s'] / floor:.1f}x" if floor else "-",
                f"{r['peak_rss_mib']:.0f}",
            ]
        )
    print_table(
        f"Training: train_on_batch at batch {BATCH_SIZE}, the median of {args.steps} steps after "
        f"{args.warmup_steps}; an epoch is {STEPS_PER_EPOCH} steps. Floor: 3 x the forward FLOPs of "
        f"{TRAIN_IMAGES:,} images at {gflops:.0f} GFLOP/s (NumPy float32 matmul, measured now)",
        [
            "backend",
            "workload",
            "forward MFLOP/image",
            "ms/step",
            "s/epoch",
            "floor s",
            "epoch / floor",
            PEAK_RSS_LABEL,
        ],
        rows,
        text_columns=2,
    )
    print_not_run(results)


def main(argv=None) -> None:
    run_benchmark(parse_args(argv), TITLE, child_command, child_main, print_results)


if __name__ == "__main__":
    main()
