"""Training and evaluation throughput of the tutorial's VAEs on each Keras backend, against the machine.

Prints (and does not assert) three figures per backend, with the hardware and versions they were
measured on, so that they can be quoted:

``dense``
    Seconds per epoch of ``model.fit`` for the dense VAE of notebook 01 (784-500-500-50, softplus,
    Adam) fed as the notebooks feed it: ``data.BinarizedBatches`` over MNIST's 60,000 training images
    (a fresh binarisation every epoch), batch 100. ``--epochs`` whole epochs are timed after one
    untimed epoch that compiles; the table gives their minimum, median and maximum.
``conv``
    The same for the convolutional VAE (``conv_encoder``/``conv_decoder`` with default filters,
    latent dimension 2).
``iwae``
    ``evaluate.iwae_log_likelihood`` with k=5000 on the dense model (untrained: the cost does not
    depend on the weights): seconds per 100 test images and the extrapolation to all 10,000. The call
    compiles once; a one-pass call of the same shapes measures that overhead, which is subtracted from
    the timed call and added back once in the 10,000-image extrapolation.

``iwae`` also times **a plain PyTorch estimator** of the same bound, when PyTorch is installed: the
dense model's weights copied into tensors, the same batches, passes and NumPy noise, no Keras. It is
the reference the Keras backends are compared with (the last column of the IWAE table); before it is
timed, it must agree with ``evaluate.iwae_log_likelihood`` on the same weights and noise.

**The floor.** The parent measures the machine's float32 matrix-multiply rate with NumPy (a 2048 x 2048
product, best of five) and divides each workload's arithmetic by it: a training step costs about three
forward passes (the forward pass, and twice its multiply-adds backwards), an IWAE pass one encoder and
``k`` decoder passes; the forward pass counts the multiply-adds of every Dense and convolution layer.
Each figure is printed with its ratio to that floor: how far the framework is from the hardware.

Memory is the peak resident set size of the process that ran the workload (``ru_maxrss``): it
includes the framework, MNIST and the batches, not only the model.

Each (backend, workload) pair runs in a child process of this script, because Keras fixes its
backend at import time and because the peak RSS of a process can only grow.

Run from the repository root (datasets as for the notebooks, e.g. ``VAE_DATA_MIRROR``)::

    python benchmarks/train_throughput.py
    python benchmarks/train_throughput.py --backends jax --workloads dense --epochs 2
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import json
import math
import os
import resource
import shlex
import statistics
import subprocess
import sys
import time

BACKEND_MODULES = {"tensorflow": "tensorflow", "jax": "jax", "torch": "torch"}
WORKLOADS = ("dense", "conv", "iwae")
BATCH_SIZE = 100
TRAIN_IMAGES = 60_000
STEPS_PER_EPOCH = TRAIN_IMAGES // BATCH_SIZE
TEST_IMAGES = 10_000
EPOCHS = 3
MATMUL_SIZE = 2048
IWAE_BATCH_SIZE = 20  # iwae_log_likelihood's defaults, passed explicitly so the pass count below holds
IWAE_SAMPLES_PER_PASS = 500
REFERENCE = "iwae_plain_torch"  # the plain PyTorch IWAE estimator, run once whatever the backends
PEAK_RSS_LABEL = "peak RSS (process, incl. framework) MiB"
# Environment variables that change how many threads a framework uses, hence the figures.
THREAD_VARIABLES = (
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "XLA_FLAGS",
    "TF_NUM_INTRAOP_THREADS",
    "TF_NUM_INTEROP_THREADS",
    "CUDA_VISIBLE_DEVICES",
)


def benchmark_parser(
    description: str, workloads, steps: int | None, warmup_steps: int | None, batch: str, hidden_workloads=()
):
    """The options every benchmark here shares: backends, workloads, timed and warm-up steps (unless
    ``steps`` is None: the benchmark times whole epochs), and the hidden ones by which the parent starts
    a child for one (backend, workload) pair."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument(
        "--backends",
        nargs="+",
        choices=sorted(BACKEND_MODULES),
        default=None,
        help="Keras backends to measure (default: tensorflow, jax, and torch if installed)",
    )
    parser.add_argument(
        "--workloads",
        nargs="+",
        choices=workloads,
        default=list(workloads),
        help="what to measure (default: all)",
    )
    if steps is not None:
        parser.add_argument(
            "--steps",
            type=int,
            default=steps,
            help=f"training steps of {batch} to time, after the warm-up (default: {steps})",
        )
        parser.add_argument(
            "--warmup-steps",
            type=int,
            default=warmup_steps,
            help=f"training steps run first, untimed, to compile the train step (default: {warmup_steps})",
        )
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--workload", choices=(*workloads, *hidden_workloads), help=argparse.SUPPRESS)
    return parser


def check_args(parser, args, positive=("steps", "warmup_steps")) -> None:
    """Refuse a child without a workload and non-positive counts, naming the option."""
    if args.child and args.workload is None:
        parser.error("--child needs --workload")
    for name in positive:
        value = getattr(args, name)
        if value < 1:
            parser.error(f"--{name.replace('_', '-')} must be a positive integer, found {value}")


def parse_args(argv=None) -> argparse.Namespace:
    parser = benchmark_parser(
        "Print training and IWAE-evaluation throughput of the tutorial's VAEs per Keras backend.",
        WORKLOADS,
        steps=None,
        warmup_steps=None,
        batch="batch 100",
        hidden_workloads=(REFERENCE,),
    )
    parser.add_argument(
        "--epochs",
        type=int,
        default=EPOCHS,
        help=f"whole epochs to time, after one that compiles (default: {EPOCHS})",
    )
    parser.add_argument(
        "--iwae-images", type=int, default=100, help="test images to time the IWAE estimate on (default: 100)"
    )
    # Hidden: a smaller k or epoch makes a quick check of this script possible; the figures to quote use
    # k = 5000 and the whole training set (a smaller epoch is scaled to 60,000 images).
    parser.add_argument("--iwae-k", type=int, default=5000, help=argparse.SUPPRESS)
    parser.add_argument("--train-images", type=int, default=TRAIN_IMAGES, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    check_args(parser, args, ("epochs", "iwae_images", "iwae_k", "train_images"))
    if not BATCH_SIZE <= args.train_images <= TRAIN_IMAGES:
        parser.error(
            f"--train-images must be between {BATCH_SIZE} and {TRAIN_IMAGES}, found {args.train_images}"
        )
    if args.iwae_images > TEST_IMAGES:
        parser.error(f"--iwae-images can be at most {TEST_IMAGES}, found {args.iwae_images}")
    return args


# --------------------------------------------------------------------------------------------------
# Child: one workload on the backend named by KERAS_BACKEND; prints one JSON line.
# --------------------------------------------------------------------------------------------------


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def dense_vae():
    from vae_utils import models

    return models.VAE(
        models.dense_encoder((28, 28), 50, hidden=(500, 500)),
        models.dense_decoder(50, (28, 28), hidden=(500, 500)),
        seed=0,
    )


def conv_vae():
    from vae_utils import models

    return models.VAE(models.conv_encoder((28, 28), 2), models.conv_decoder(2, (28, 28)), seed=0)


def wait_for_device(model) -> None:
    """Block until the model's last update is done: JAX and GPU backends dispatch asynchronously."""
    from keras import ops

    ops.convert_to_numpy(model.trainable_variables[-1])


def forward_flops(model) -> int:
    """Floating-point operations of one forward pass of ``model`` for one example: 2 per multiply-add of
    its Dense, Conv2D and Conv2DTranspose layers (nested models included); the rest is left out."""
    import keras

    total = 0
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            total += forward_flops(layer)
        elif isinstance(layer, keras.layers.Dense | keras.layers.Conv2D | keras.layers.Conv2DTranspose):
            # a transposed convolution applies its kernel at every input position, the others at every output
            shape = (
                layer.input.shape if isinstance(layer, keras.layers.Conv2DTranspose) else layer.output.shape
            )
            total += 2 * math.prod(layer.kernel.shape) * math.prod(shape[1:-1])
    return total


def time_epochs(model, x_grey, epochs: int) -> dict:
    """Fit ``1 + epochs`` whole epochs of ``BinarizedBatches`` (the notebooks' input path); time the last
    ``epochs``, scaled to an epoch of 60,000 images when ``x_grey`` holds fewer."""
    import keras

    from vae_utils import data

    model.compile(optimizer=keras.optimizers.Adam())
    starts, ends = [], []
    timer = keras.callbacks.LambdaCallback(
        on_epoch_begin=lambda epoch, logs: starts.append(time.perf_counter()),
        on_epoch_end=lambda epoch, logs: (wait_for_device(model), ends.append(time.perf_counter())),
    )
    batches = data.BinarizedBatches(x_grey, BATCH_SIZE, seed=0)
    model.fit(batches, epochs=1 + epochs, verbose=0, callbacks=[timer])
    scale = STEPS_PER_EPOCH / len(batches)
    seconds = [
        (end - start) * scale for start, end in zip(starts[1:], ends[1:], strict=True)
    ]  # the first epoch traces and compiles the train step
    return {
        "epochs": epochs,
        "images": len(batches) * BATCH_SIZE,
        "seconds_per_epoch": {"min": min(seconds), "median": statistics.median(seconds), "max": max(seconds)},
        "flops_per_epoch": 3 * (forward_flops(model.encoder) + forward_flops(model.decoder)) * TRAIN_IMAGES,
    }


def time_iwae_call(model, x, k: int) -> float:
    from vae_utils import evaluate

    start = time.perf_counter()
    evaluate.iwae_log_likelihood(
        model, x, k=k, batch_size=IWAE_BATCH_SIZE, samples_per_pass=IWAE_SAMPLES_PER_PASS
    )
    return time.perf_counter() - start


def time_iwae(model, x_test, images: int, k: int) -> dict:
    """Time ``iwae_log_likelihood`` on ``images`` test images, separating its per-call compilation.

    A call makes ``passes`` predictions of the same shape and compiles once: ``seconds = overhead +
    passes * per_pass``. A one-pass call of the first pass's shape gives ``overhead + per_pass``.
    """
    first_batch = x_test[: min(images, IWAE_BATCH_SIZE)]
    one_pass_k = min(k, IWAE_SAMPLES_PER_PASS)
    time_iwae_call(model, first_batch, one_pass_k)  # warm-up: first-in-process costs (allocators, threads)
    one_pass_seconds = time_iwae_call(model, first_batch, one_pass_k)
    seconds = time_iwae_call(model, x_test[:images], k)
    passes = _iwae_passes(images, k)
    # With one pass, or so few that timing noise swamps them, the two cannot be told apart: then
    # report the raw time, compilation included (overhead None).
    overhead, per_image = None, seconds / images
    if passes >= 2 and seconds > one_pass_seconds:
        per_pass = (seconds - one_pass_seconds) / (passes - 1)
        overhead = max(one_pass_seconds - per_pass, 0.0)
        per_image = per_pass * passes / images
    return _iwae_record(model, images, k, seconds, overhead, per_image)


def _iwae_passes(images: int, k: int) -> int:
    return math.ceil(images / IWAE_BATCH_SIZE) * math.ceil(k / IWAE_SAMPLES_PER_PASS)


def _iwae_record(model, images: int, k: int, seconds: float, overhead, per_image: float) -> dict:
    """One row of the IWAE table: the raw time, its split into overhead and per image, the FLOPs."""
    return {
        "images": images,
        "k": k,
        "passes": _iwae_passes(images, k),
        "seconds": seconds,
        "flops_per_100_images": 100 * (forward_flops(model.encoder) + k * forward_flops(model.decoder)),
        "overhead_seconds": overhead,
        "seconds_per_100_images": per_image * 100,
        "test_set_minutes": ((overhead or 0.0) + per_image * TEST_IMAGES) / 60,
    }


def plain_torch_iwae(vae, x, k: int, seed: int = 0):
    """``evaluate.iwae_log_likelihood`` of the dense VAE written in plain PyTorch: the speed reference.

    The Keras model's weights are copied into tensors; batches, passes and the NumPy noise are those of
    ``evaluate``, so the two agree to float32 rounding. Returns one estimate per image, shape ``(n,)``.
    """
    import numpy as np
    import torch
    from torch.nn.functional import softplus

    def weights(model, names):  # (kernel, bias) of each named Dense layer, as tensors
        return [tuple(map(torch.from_numpy, model.get_layer(name).get_weights())) for name in names]

    encoder_dense = [layer.name for layer in vae.encoder.layers if layer.name.startswith("dense")]
    hidden_1, hidden_2, mean, log_var = weights(vae.encoder, [*encoder_dense, "z_mean", "z_log_var"])
    decoder_dense = [layer.name for layer in vae.decoder.layers if layer.name.startswith("dense")]
    decoder_1, decoder_2, logits_layer = weights(vae.decoder, [*decoder_dense, "logits"])
    log_2pi = math.log(2 * math.pi)
    rng = np.random.default_rng(seed)
    out = []
    with torch.inference_mode():
        for start in range(0, len(x), IWAE_BATCH_SIZE):
            xb = torch.from_numpy(np.asarray(x[start : start + IWAE_BATCH_SIZE], dtype=np.float32))
            xb = xb.reshape(len(xb), -1)
            h = softplus(softplus(xb @ hidden_1[0] + hidden_1[1]) @ hidden_2[0] + hidden_2[1])
            z_mean, z_log_var = h @ mean[0] + mean[1], h @ log_var[0] + log_var[1]
            total = torch.full((len(xb),), -math.inf, dtype=torch.float64)
            for done in range(0, k, IWAE_SAMPLES_PER_PASS):
                shape = (len(xb), min(IWAE_SAMPLES_PER_PASS, k - done), z_mean.shape[-1])
                eps = torch.from_numpy(rng.standard_normal(shape, dtype=np.float32))
                z = z_mean[:, None] + torch.exp(0.5 * z_log_var)[:, None] * eps
                h = softplus(softplus(z @ decoder_1[0] + decoder_1[1]) @ decoder_2[0] + decoder_2[1])
                logits = h @ logits_layer[0] + logits_layer[1]
                log_px_z = (xb[:, None] * logits - softplus(logits)).sum(-1)
                log_pz = -0.5 * (log_2pi + z.square()).sum(-1)
                log_qz_x = -0.5 * (log_2pi + z_log_var[:, None] + eps.square()).sum(-1)
                log_w = (log_px_z + log_pz - log_qz_x).double()
                total = torch.logaddexp(total, torch.logsumexp(log_w, dim=1))
            out.append((total - math.log(k)).numpy())
    return np.concatenate(out)


def time_plain_torch_iwae(vae, x_test, images: int, k: int) -> dict:
    """Check ``plain_torch_iwae`` against ``evaluate.iwae_log_likelihood``, then time it as ``time_iwae``
    times the Keras estimator (nothing to compile: the overhead is 0)."""
    import numpy as np

    from vae_utils import evaluate

    check = x_test[:IWAE_BATCH_SIZE]
    check_k = min(k, 2 * IWAE_SAMPLES_PER_PASS)
    expected = evaluate.iwae_log_likelihood(vae, check, k=check_k, batch_size=IWAE_BATCH_SIZE, seed=0)
    difference = float(np.max(np.abs(plain_torch_iwae(vae, check, check_k) - expected)))
    if not difference < 1e-2:
        raise AssertionError(f"the plain PyTorch estimate differs from evaluate's by {difference:.3g} nats")
    plain_torch_iwae(vae, check, min(k, IWAE_SAMPLES_PER_PASS))  # warm-up: threads, allocators
    start = time.perf_counter()
    plain_torch_iwae(vae, x_test[:images], k)
    seconds = time.perf_counter() - start
    record = _iwae_record(vae, images, k, seconds, overhead=0.0, per_image=seconds / images)
    return {"backend": "plain PyTorch", **record, "max_difference_nats": difference}


def run_workload(workload: str, args: argparse.Namespace) -> dict:
    from vae_utils import data, repro

    repro.seed_everything(0)
    mnist = data.load("mnist")
    if workload == REFERENCE:
        x_test = data.binarize(mnist["x_test"], seed=0)
        return time_plain_torch_iwae(dense_vae(), x_test, args.iwae_images, args.iwae_k)
    if workload == "iwae":
        x_test = data.binarize(mnist["x_test"], seed=0)
        return time_iwae(dense_vae(), x_test, args.iwae_images, args.iwae_k)
    model = dense_vae() if workload == "dense" else conv_vae()
    return time_epochs(model, mnist["x_train"][: args.train_images], args.epochs)


def keras_imports() -> bool:
    """Import Keras and its backend; where they cannot be, print the child's "skipped" line and say False."""
    try:
        import keras  # noqa: F401  (imports the backend, which is where a missing framework shows)
    except (ImportError, OSError) as exc:  # OSError: a framework whose shared libraries are missing
        print(json.dumps({"status": "skipped", "reason": f"{type(exc).__name__}: {exc}"}))
        return False
    return True


def print_measured(workload: str, result: dict) -> None:
    """The child's line of a finished measurement: backend, workload, peak memory and ``result``."""
    backend = os.environ["KERAS_BACKEND"]
    line = {"status": "ok", "backend": backend, "workload": workload, "peak_rss_mib": peak_rss_mib()}
    print(json.dumps({**line, **result}))


def child_main(args: argparse.Namespace) -> None:
    if keras_imports():
        print_measured(args.workload, run_workload(args.workload, args))


# --------------------------------------------------------------------------------------------------
# Parent: header, one child per (backend, workload), tables.
# --------------------------------------------------------------------------------------------------


def default_backends() -> list[str]:
    backends = ["tensorflow", "jax"]
    if importlib.util.find_spec("torch") is not None:
        backends.append("torch")
    return backends


TITLE = "VAE training and evaluation throughput (benchmarks/train_throughput.py)"


def print_header(title: str = TITLE) -> None:
    # The parent only needs Keras's version: the light NumPy backend spares it TensorFlow's import.
    os.environ["KERAS_BACKEND"] = "numpy"
    from vae_utils import repro

    environment = repro.environment()
    hardware = environment["hardware"]
    versions = {name: v for name, v in environment["versions"].items() if name != "backend"}
    print(title)
    print(f"date:      {dt.datetime.now().astimezone().isoformat(timespec='seconds')}")
    print(f"command:   {shlex.join([sys.executable, *sys.argv])}")
    print(f"cpu:       {hardware['cpu']}, {hardware['cpu_count']} cores, {hardware['memory_gib']} GiB memory")
    print(f"gpus:      {', '.join(hardware['gpus']) or 'none'}")
    print(f"platform:  {hardware['platform']}")
    print(f"versions:  {', '.join(f'{name} {v}' for name, v in versions.items())}")
    # Another job on the machine or a lowered priority slows every figure below.
    load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    print(f"load:      {load} (1, 5, 15 min averages at start); niceness {os.nice(0)}")
    threads = [f"{name}={os.environ[name]}" for name in THREAD_VARIABLES if name in os.environ]
    if threads:
        print(f"threads:   {' '.join(threads)}")
    print()


def child_prefix(script: str, workload: str) -> list[str]:
    """The command that starts ``script`` as the child for one workload; each benchmark adds its options."""
    return [sys.executable, os.path.abspath(script), "--child", "--workload", workload]


def print_not_run(results: list[dict]) -> None:
    """A line for each (backend, workload) that did not run, saying why."""
    for result in results:
        if result["status"] != "ok":
            print(f"{result['status']}: {result['backend']}/{result['workload']}: {result['reason']}")


def child_command(workload: str, args: argparse.Namespace) -> list[str]:
    return [
        *child_prefix(__file__, workload),
        "--epochs",
        str(args.epochs),
        "--train-images",
        str(args.train_images),
        "--iwae-images",
        str(args.iwae_images),
        "--iwae-k",
        str(args.iwae_k),
    ]


def run_child(backend: str, workload: str, args: argparse.Namespace, command=child_command) -> dict:
    """Run one workload in a fresh process on ``backend``; return its result, or why there is none.

    ``command(workload, args)`` is the child's command line (another benchmark passes its own).
    """
    record = {"backend": backend, "workload": workload}
    module = BACKEND_MODULES[backend]
    if importlib.util.find_spec(module) is None:
        return {**record, "status": "skipped", "reason": f"module {module!r} is not installed"}
    environment = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "2"}
    completed = subprocess.run(command(workload, args), env=environment, capture_output=True, text=True)
    json_lines = [line for line in completed.stdout.splitlines() if line.startswith("{")]
    if completed.returncode == 0 and json_lines:
        return {**record, **json.loads(json_lines[-1])}
    error_lines = completed.stderr.strip().splitlines() or ["no output"]
    return {**record, "status": "failed", "reason": f"exit status {completed.returncode}: {error_lines[-1]}"}


def print_table(title: str, columns: list[str], rows: list[list[str]], text_columns: int) -> None:
    """Print ``rows`` under ``columns``: the first ``text_columns`` left-aligned, the numbers right."""
    widths = [max(len(cell) for cell in column) for column in zip(columns, *rows, strict=True)]
    print(title)
    for cells in [columns, *rows]:
        aligned = [
            cell.ljust(width) if i < text_columns else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(cells, widths, strict=True))
        ]
        print("  ".join(aligned).rstrip())
    print()


def matmul_gflops(size: int = MATMUL_SIZE, repeats: int = 5) -> float:
    """The machine's float32 matrix-multiply rate, GFLOP/s: NumPy's BLAS on all cores, best of ``repeats``."""
    import numpy as np

    rng = np.random.default_rng(0)
    a, b = (rng.standard_normal((size, size), dtype=np.float32) for _ in range(2))
    a @ b  # warm-up: threads, pages
    best = math.inf
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best / 1e9


def training_row(result: dict, gflops: float) -> list[str]:
    per_epoch = result["seconds_per_epoch"]
    floor = result["flops_per_epoch"] / (gflops * 1e9)
    return [
        result["backend"],
        result["workload"],
        str(result["epochs"]),
        *(f"{per_epoch[key]:.2f}" for key in ("min", "median", "max")),
        f"{floor:.2f}",
        f"{per_epoch['median'] / floor:.1f}x",
        f"{result['peak_rss_mib']:.0f}",
    ]


def iwae_row(result: dict, gflops: float, reference: float | None = None) -> list[str]:
    overhead = result["overhead_seconds"]
    floor = result["flops_per_100_images"] / (gflops * 1e9)
    return [
        result["backend"],
        str(result["images"]),
        str(result["k"]),
        f"{result['seconds']:.2f}",
        "n/a" if overhead is None else f"{overhead:.2f}",
        f"{result['seconds_per_100_images']:.2f}",
        f"{floor:.2f}",
        f"{result['seconds_per_100_images'] / floor:.1f}x",
        f"{result['test_set_minutes']:.1f}",
        f"{result['peak_rss_mib']:.0f}",
        "n/a" if reference is None else f"{result['seconds_per_100_images'] / reference:.2f}x",
    ]


def print_results(results: list[dict], args: argparse.Namespace) -> None:
    gflops = matmul_gflops()
    print(
        f"floor:     float32 matmul {MATMUL_SIZE} x {MATMUL_SIZE} with NumPy, best of 5: {gflops:.0f} "
        "GFLOP/s; each workload's floor is its arithmetic at that rate\n"
    )
    done = [r for r in results if r["status"] == "ok"]
    training = [training_row(r, gflops) for r in done if r["workload"] not in ("iwae", REFERENCE)]
    if training:
        scaled = "" if args.train_images == TRAIN_IMAGES else f", scaled from epochs of {args.train_images:,}"
        print_table(
            f"Training: model.fit on data.BinarizedBatches, Adam, batch {BATCH_SIZE}; one epoch untimed "
            f"(compilation), then {args.epochs} timed; s/epoch for {TRAIN_IMAGES:,} images{scaled}",
            [
                "backend",
                "model",
                "epochs",
                "min s",
                "median s",
                "max s",
                "floor s",
                "median/floor",
                PEAK_RSS_LABEL,
            ],
            training,
            text_columns=2,
        )
    iwae_results = [r for r in done if r["workload"] in ("iwae", REFERENCE)]
    reference = next((r["seconds_per_100_images"] for r in iwae_results if r["workload"] == REFERENCE), None)
    if iwae_results:
        print_table(
            f"IWAE log-likelihood, dense model: batches of {IWAE_BATCH_SIZE} images, "
            f"{IWAE_SAMPLES_PER_PASS} samples per pass; per-call compilation measured apart",
            [
                "backend",
                "images",
                "k",
                "time (s)",
                "compile/call (s)",
                "s/100 images",
                "floor s",
                "s/floor",
                f"{TEST_IMAGES:,} images (min)",
                PEAK_RSS_LABEL,
                "s/plain PyTorch",
            ],
            [iwae_row(r, gflops, reference) for r in iwae_results],
            text_columns=1,
        )
        if reference is not None:
            difference = next(r["max_difference_nats"] for r in iwae_results if r["workload"] == REFERENCE)
            print(
                "plain PyTorch: the same estimator without Keras (same weights, batches and NumPy noise); it "
                f"agreed with evaluate.iwae_log_likelihood to {difference:.1e} nats before it was timed\n"
            )
        if any(r["overhead_seconds"] is None for r in iwae_results):
            print(
                "n/a: too few passes to separate the per-call compilation, which s/100 images then includes\n"
            )
    print_not_run(results)


def run_benchmark(args: argparse.Namespace, title: str, command, child, report) -> None:
    """A child runs ``child(args)``; the parent prints the header, runs ``command`` once per (backend,
    workload) in a fresh process and passes the results to ``report(results, args)``."""
    if args.child:
        child(args)
        return
    backends = args.backends or default_backends()
    print_header(title)
    if args.backends is None and "torch" not in backends:
        print("torch:     left out of the default backends: module 'torch' is not installed\n")
    results = []
    for backend in backends:
        for workload in args.workloads:
            print(f"running {backend}/{workload} ...", file=sys.stderr, flush=True)
            results.append(run_child(backend, workload, args, command=command))
    report(results, args)


def main(argv=None) -> None:
    def report(results: list[dict], args: argparse.Namespace) -> None:
        if "iwae" in args.workloads:  # the reference runs once, whatever the backends
            print("running the plain PyTorch IWAE reference ...", file=sys.stderr, flush=True)
            results.append(run_child("torch", REFERENCE, args))
        print_results(results, args)

    run_benchmark(parse_args(argv), TITLE, child_command, child_main, report)


if __name__ == "__main__":
    main()
