"""Training and evaluation throughput of the tutorial's VAEs on each Keras backend.

Prints (and does not assert) three figures per backend, with the hardware and versions they were
measured on, so that they can be quoted:

``dense``
    Seconds per epoch of ``model.fit`` for the dense VAE of notebook 01 (784-500-500-50, softplus,
    Adam) on MNIST's 60,000 training images binarised once, batch 100 (600 steps per epoch).
``conv``
    The same for the convolutional VAE (``conv_encoder``/``conv_decoder`` with default filters,
    latent dimension 2).
``iwae``
    ``evaluate.iwae_log_likelihood`` with k=5000 on the dense model (untrained: the cost does not
    depend on the weights): seconds per 100 test images and the extrapolation to all 10,000.

Compilation is excluded. Training: a few warm-up steps compile the train step, then ``--steps`` steps
are timed with ``time.perf_counter`` and scaled to 600 steps; shuffling and end-of-epoch work are
left out. IWAE: ``iwae_log_likelihood`` builds a fresh model, so every call compiles once; a one-pass
call of the same shapes measures that per-call overhead, which is subtracted from the timed call and
added back once in the 10,000-image extrapolation.

Memory is the peak resident set size of the process that ran the workload (``ru_maxrss``): it
includes the framework, MNIST and the binarised training set, not only the model.

Each (backend, workload) pair runs in a child process of this script, because Keras fixes its
backend at import time and because the peak RSS of a process can only grow.

Run from the repository root (datasets as for the notebooks, e.g. ``VAE_DATA_MIRROR``)::

    python benchmarks/train_throughput.py
    python benchmarks/train_throughput.py --backends jax --workloads dense --steps 50
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
import subprocess
import sys
import time

BACKEND_MODULES = {"tensorflow": "tensorflow", "jax": "jax", "torch": "torch"}
WORKLOADS = ("dense", "conv", "iwae")
BATCH_SIZE = 100
TRAIN_IMAGES = 60_000
STEPS_PER_EPOCH = TRAIN_IMAGES // BATCH_SIZE
TEST_IMAGES = 10_000
IWAE_BATCH_SIZE = 20  # iwae_log_likelihood's defaults, passed explicitly so the pass count below holds
IWAE_SAMPLES_PER_PASS = 500
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


def benchmark_parser(description: str, workloads, steps: int, warmup_steps: int, batch: str):
    """The options every benchmark here shares: backends, workloads, timed and warm-up steps, and the
    hidden ones by which the parent starts a child for one (backend, workload) pair."""
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
    parser.add_argument("--workload", choices=workloads, help=argparse.SUPPRESS)
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
        steps=200,
        warmup_steps=5,
        batch="batch 100",
    )
    parser.add_argument(
        "--iwae-images", type=int, default=100, help="test images to time the IWAE estimate on (default: 100)"
    )
    # Hidden: a smaller k makes a quick check of this script possible; the figure to quote uses 5000.
    parser.add_argument("--iwae-k", type=int, default=5000, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    check_args(parser, args, ("steps", "warmup_steps", "iwae_images", "iwae_k"))
    if max(args.steps, args.warmup_steps) > STEPS_PER_EPOCH:
        parser.error(f"--steps and --warmup-steps can be at most {STEPS_PER_EPOCH} (one epoch of MNIST)")
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


def time_training(model, x_train, steps: int, warmup_steps: int) -> dict:
    import keras

    model.compile(optimizer=keras.optimizers.Adam())
    # The first fit traces and compiles the train step; the timed fit reuses the compiled function.
    model.fit(x_train[: warmup_steps * BATCH_SIZE], batch_size=BATCH_SIZE, epochs=1, verbose=0)
    wait_for_device(model)
    start = time.perf_counter()
    model.fit(x_train[: steps * BATCH_SIZE], batch_size=BATCH_SIZE, epochs=1, verbose=0)
    wait_for_device(model)
    seconds = time.perf_counter() - start
    return {"steps": steps, "seconds": seconds, "seconds_per_epoch": seconds / steps * STEPS_PER_EPOCH}


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
    passes = math.ceil(images / IWAE_BATCH_SIZE) * math.ceil(k / IWAE_SAMPLES_PER_PASS)
    result = {"images": images, "k": k, "passes": passes, "seconds": seconds}
    # With one pass, or so few that timing noise swamps them, the two cannot be told apart: then
    # report the raw time, compilation included (overhead None).
    overhead, per_image = None, seconds / images
    if passes >= 2 and seconds > one_pass_seconds:
        per_pass = (seconds - one_pass_seconds) / (passes - 1)
        overhead = max(one_pass_seconds - per_pass, 0.0)
        per_image = per_pass * passes / images
    full_test_seconds = (overhead or 0.0) + per_image * TEST_IMAGES
    return {
        **result,
        "overhead_seconds": overhead,
        "seconds_per_100_images": per_image * 100,
        "test_set_minutes": full_test_seconds / 60,
    }


def run_workload(workload: str, args: argparse.Namespace) -> dict:
    from vae_utils import data, repro

    repro.seed_everything(0)
    mnist = data.load("mnist")
    if workload == "iwae":
        x_test = data.binarize(mnist["x_test"], seed=0)
        return time_iwae(dense_vae(), x_test, args.iwae_images, args.iwae_k)
    x_train = data.binarize(mnist["x_train"], seed=0)
    model = dense_vae() if workload == "dense" else conv_vae()
    return time_training(model, x_train, args.steps, args.warmup_steps)


def child_main(args: argparse.Namespace) -> None:
    backend = os.environ["KERAS_BACKEND"]
    try:
        import keras  # noqa: F401  (imports the backend, which is where a missing framework shows)
    except (ImportError, OSError) as exc:  # OSError: a framework whose shared libraries are missing
        print(json.dumps({"status": "skipped", "reason": f"{type(exc).__name__}: {exc}"}))
        return
    result = run_workload(args.workload, args)
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


def training_row(result: dict) -> list[str]:
    return [
        result["backend"],
        result["workload"],
        str(result["steps"]),
        f"{result['seconds']:.2f}",
        f"{result['seconds_per_epoch']:.1f}",
        f"{result['peak_rss_mib']:.0f}",
    ]


def iwae_row(result: dict) -> list[str]:
    overhead = result["overhead_seconds"]
    return [
        result["backend"],
        str(result["images"]),
        str(result["k"]),
        f"{result['seconds']:.2f}",
        "n/a" if overhead is None else f"{overhead:.2f}",
        f"{result['seconds_per_100_images']:.2f}",
        f"{result['test_set_minutes']:.1f}",
        f"{result['peak_rss_mib']:.0f}",
    ]


def print_results(results: list[dict], args: argparse.Namespace) -> None:
    done = [r for r in results if r["status"] == "ok"]
    training = [training_row(r) for r in done if r["workload"] != "iwae"]
    if training:
        print_table(
            f"Training: model.fit, Adam, batch {BATCH_SIZE}; {args.warmup_steps} warm-up steps untimed, "
            f"then the timed steps scaled to {STEPS_PER_EPOCH} steps = 1 epoch of {TRAIN_IMAGES:,} images",
            ["backend", "model", "steps timed", "time (s)", "s/epoch", PEAK_RSS_LABEL],
            training,
            text_columns=2,
        )
    iwae_results = [r for r in done if r["workload"] == "iwae"]
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
                f"{TEST_IMAGES:,} images (min)",
                PEAK_RSS_LABEL,
            ],
            [iwae_row(r) for r in iwae_results],
            text_columns=1,
        )
        if any(r["overhead_seconds"] is None for r in iwae_results):
            print(
                "n/a: too few passes to separate the per-call compilation, which s/100 images then includes\n"
            )
    for result in results:
        if result["status"] != "ok":
            print(f"{result['status']}: {result['backend']}/{result['workload']}: {result['reason']}")


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
    run_benchmark(parse_args(argv), TITLE, child_command, child_main, print_results)


if __name__ == "__main__":
    main()
