"""The throughput benchmark: its arithmetic count, and a quick run of the real script end to end."""

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import keras
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import train_throughput  # noqa: E402


def _script(command, mirror) -> str:
    """Run a benchmark script offline on the mirror; its standard output, once it exited 0."""
    done = subprocess.run(
        command,
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "VAE_DATA_MIRROR": str(mirror), "VAE_OFFLINE": "1"},
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def test_forward_flops_count_every_multiply_add_of_the_dense_and_conv_layers():
    vae = train_throughput.dense_vae()
    # 784-500-500-(50 mean, 50 log-variance) and 50-500-500-784: two FLOPs per multiply-add
    assert train_throughput.forward_flops(vae.encoder) == 2 * (784 * 500 + 500 * 500 + 2 * 500 * 50)
    assert train_throughput.forward_flops(vae.decoder) == 2 * (50 * 500 + 500 * 500 + 500 * 784)
    x = keras.Input((8, 8, 3))
    h = keras.layers.Conv2D(4, 3, strides=2, padding="same")(x)  # kernel at each of 4 x 4 outputs
    h = keras.layers.Conv2DTranspose(2, 3, strides=2, padding="same")(h)  # at each of 4 x 4 inputs
    model = keras.Model(x, keras.layers.Dense(5)(h))  # a dense layer at each of 8 x 8 positions
    assert train_throughput.forward_flops(model) == 2 * (16 * 27 * 4 + 16 * 9 * 4 * 2 + 64 * 2 * 5)


@pytest.mark.integration
def test_a_quick_run_prints_every_figure_with_its_ratio_to_the_matmul_floor(mirror):
    command = [
        sys.executable,
        str(ROOT / "benchmarks" / "train_throughput.py"),
        "--backends",
        "tensorflow",
        "--workloads",
        "dense",
        "iwae",
        "--epochs",
        "2",
        "--train-images",
        "500",
        "--iwae-images",
        "20",
        "--iwae-k",
        "10",
    ]
    out = _script(command, mirror)
    assert re.search(r"floor: +float32 matmul 2048 x 2048 with NumPy, best of 5: \d+ GFLOP/s", out), out
    dense = re.search(r"^tensorflow +dense +2 +([\d.]+) +([\d.]+) +([\d.]+) +([\d.]+) +([\d.]+)x", out, re.M)
    assert dense, out
    low, median, high, floor, ratio = map(float, dense.groups())
    assert 0 < low <= median <= high and floor > 0
    assert ratio == pytest.approx(median / floor, abs=0.06)
    assert re.search(r"^tensorflow +20 +10 +[\d.]+ +\S+ +[\d.]+ +[\d.]+ +[\d.]+x", out, re.M), out
    # the plain PyTorch reference: timed after agreeing with evaluate's estimate, or said to be skipped
    if importlib.util.find_spec("torch") is None:
        assert "skipped: torch/iwae_plain_torch: module 'torch' is not installed" in out, out
    else:
        assert re.search(r"^plain PyTorch +20 +10 .* 1\.00x$", out, re.M), out
        assert re.search(r"agreed with evaluate\.iwae_log_likelihood to [\d.e+-]+ nats", out), out


@pytest.mark.integration
def test_the_m2_benchmark_counts_the_papers_flops_and_prints_before_after_and_floor(mirror):
    import m2_throughput

    shapes = m2_throughput.matmul_shapes("m1m2_features", 100, 20)
    macs = sum(m * k * n for m, k, n in shapes)
    # q(y|x) on 1 + 499 images; q(z|x,y) and p(z1|y,z2) on 1 + 4,990 (image, class) pairs
    expected = 500 * (20 * 300 + 300 * 10) + 4991 * (30 * 300 + 300 * 100 + 60 * 300 + 300 * 40)
    assert macs == expected
    assert 6 * macs * 100 / 1e12 == pytest.approx(0.209, abs=0.001), "0.21 TFLOP per epoch, counted by hand"
    command = [sys.executable, str(ROOT / "benchmarks" / "m2_throughput.py"), "--backends", "jax"]
    out = _script([*command, "--workloads", "m1m2_features"], mirror)
    row = re.search(
        r"^jax +m1m2_features +0\.209 +\d+ / \d+ +([\d.]+) +([\d.]+) +([\d.]+)x +([\d.]+) +([\d.]+)x",
        out,
        re.M,
    )
    assert row, out
    floor, before, before_ratio, after, after_ratio = map(float, row.groups())
    assert before_ratio == pytest.approx(before / floor, rel=0.02)  # printed rounded
    assert after_ratio == pytest.approx(after / floor, rel=0.02)


@pytest.mark.integration
def test_the_cifar_benchmark_times_the_notebooks_own_models_against_the_floor(mirror):
    import cifar_throughput

    # the models come from notebook 03's cells: (d) is (c) with the two-level networks added
    names = cifar_throughput.notebook_models()
    assert {"build_vae_mix", "TwoLevelVAE", "bottom_up", "top_down"} <= names.keys()
    command = [sys.executable, str(ROOT / "benchmarks" / "cifar_throughput.py"), "--backends", "tensorflow"]
    quick = ["--workloads", "mix", "likelihood", "--steps", "2", "--warmup-steps", "1"]
    out = _script([*command, *quick], mirror)
    row = re.search(r"^tensorflow +mix +59\.1 +\d+ +([\d.]+) +([\d.]+) +([\d.]+)x", out, re.M)
    assert row, out
    epoch, floor, ratio = map(float, row.groups())
    assert ratio == pytest.approx(epoch / floor, rel=0.05)  # printed rounded
    assert re.search(r"^tensorflow +likelihood +0\.0 +\d+ +[\d.]+ +- +-", out, re.M), out
