"""Every semi-supervised method of this repository next to the published MNIST test errors.

Reads what the notebooks saved in ``results/``: ``05_semi_supervised_m1.json`` (M1 + SVM, M1 + label
spreading), ``06_semi_supervised_m2/*.json`` (M2 and M1 + M2, one file per label split, aggregated here)
and ``07_baselines_and_comparison.json`` (PCA + SVM, dense network, CNN). A file that is missing is a
method not yet run and is skipped; a file of another profile (a smoke run) is ignored; a file that exists
but does not hold the expected structure is an error. Introduced in
``notebooks/07_baselines_and_comparison.ipynb``.

``python -m vae_utils.compare`` prints the comparison as a Markdown table;
``python -m vae_utils.compare --readme README.md`` rewrites the table between the markers
``<!-- comparison:start -->`` and ``<!-- comparison:end -->`` of that file.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from . import home, plotting
from .atomic import write_text

__all__ = ["PUBLISHED", "collect", "markdown_table", "plot", "published", "update_readme"]

RESULTS_DIR = home.ROOT / "results"
N_LABELLED = (100, 600, 1000, 3000)  # the columns of Kingma et al. (2014), Table 1
COLUMNS = ["method", "label", "N", "mean", "std", "n_seeds", "source"]
START, END = "<!-- comparison:start -->", "<!-- comparison:end -->"

KINGMA_2014 = "Kingma et al. (2014), Table 1"
BLOG_POST = "the blog post this repository grew from"

# MNIST test error (%) by number of labels N: (mean, std), std None where none is given.
PUBLISHED = {
    "kingma_nn": {
        "label": "NN",
        "source": KINGMA_2014,
        "errors": {100: (25.80, None), 600: (11.44, None), 1000: (10.70, None), 3000: (6.04, None)},
    },
    "kingma_cnn": {
        "label": "CNN",
        "source": KINGMA_2014,
        "errors": {100: (22.98, None), 600: (7.68, None), 1000: (6.45, None), 3000: (3.35, None)},
    },
    "kingma_m1_tsvm": {
        "label": "M1 + TSVM",
        "source": KINGMA_2014,
        "errors": {100: (11.82, 0.25), 600: (5.72, 0.049), 1000: (4.24, 0.07), 3000: (3.49, 0.04)},
    },
    "kingma_m2": {
        "label": "M2",
        "source": KINGMA_2014,
        "errors": {100: (11.97, 1.71), 600: (4.94, 0.13), 1000: (3.60, 0.56), 3000: (3.92, 0.63)},
    },
    "kingma_m1m2": {
        "label": "M1 + M2",
        "source": KINGMA_2014,
        "errors": {100: (3.33, 0.14), 600: (2.59, 0.05), 1000: (2.40, 0.02), 3000: (2.18, 0.04)},
    },
    "blog_cnn": {
        "label": "CNN",
        "source": BLOG_POST,
        "errors": {100: (74.0, None)},  # 26 % accuracy
        "decimals": 0,  # a whole percentage, as reported
    },
}

# The order of our rows in the table: baselines first, then M1, M2, M1 + M2.
_ORDER = ("pca_svm", "dense", "cnn", "m1_svm", "m1_label_spreading", "m2", "m1m2")

# Our results files, in reading order: file -> {method in the file: readable label}.
_PER_N_FILES = {
    "05_semi_supervised_m1.json": {"m1_svm": "M1 + SVM", "m1_label_spreading": "M1 + label spreading"},
    "07_baselines_and_comparison.json": {"pca_svm": "PCA + SVM", "dense": "dense network", "cnn": "CNN"},
}
_PER_SPLIT_DIR = "06_semi_supervised_m2"
_PER_SPLIT_METHODS = {"m2": "M2", "m1m2": "M1 + M2"}

# one colour per kind of model, shared by our method and its published counterpart
_COLOURS = {
    "pca_svm": "tab:gray",
    "dense": "tab:blue",
    "kingma_nn": "tab:blue",
    "cnn": "tab:orange",
    "kingma_cnn": "tab:orange",
    "blog_cnn": "tab:orange",
    "m1_svm": "tab:green",
    "m1_label_spreading": "tab:olive",
    "kingma_m1_tsvm": "tab:green",
    "m2": "tab:red",
    "kingma_m2": "tab:red",
    "m1m2": "tab:purple",
    "kingma_m1m2": "tab:purple",
}


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _malformed(path: Path, expected: str, found) -> ValueError:
    text = json.dumps(found) if not isinstance(found, str) else found
    if len(text) > 200:
        text = text[:200] + " ..."
    return ValueError(f"{path}: expected {expected}, found {text}")


def _read(path: Path, profile: str | None) -> dict | None:
    """The ``metrics`` of a results file, or None when the file belongs to another profile."""
    try:
        record = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise _malformed(path, "a JSON results file", f"invalid JSON ({exc})") from exc
    if not (isinstance(record, dict) and isinstance(record.get("metrics"), dict) and "profile" in record):
        raise _malformed(path, 'an object with a "profile" and a "metrics" object', record)
    if profile is not None and record.get("profile") != profile:
        return None
    return record["metrics"]


def _check_errors(path: Path, key: str, errors: list) -> None:
    if not all(0 <= e <= 100 for e in errors):
        raise ValueError(f"{path}: metrics.{key}: expected test errors in [0, 100] %, found {errors}")


def _per_n_rows(path: Path, methods: dict[str, str], profile: str | None) -> list[dict]:
    """Rows from a file that holds ``{method: {"<N>": {"errors": [...], "mean": m, "std": s}}}``."""
    metrics = _read(path, profile)
    if metrics is None:
        return []
    if not methods.keys() & metrics.keys():
        raise _malformed(path, f"metrics for at least one of {sorted(methods)}", sorted(metrics))
    source = f"ours, notebook {path.name[:2]}"
    rows = []
    for method, label in methods.items():
        if method not in metrics:
            continue
        per_n = metrics[method]
        expected = f'metrics.{method} as {{"<N>": {{"errors": [...], "mean": .., "std": ..}}}}'
        if not isinstance(per_n, dict) or not per_n:
            raise _malformed(path, expected, per_n)
        for n, entry in per_n.items():
            ok = (
                n.isdigit()
                and isinstance(entry, dict)
                and isinstance(entry.get("errors"), list)
                and entry["errors"]
                and all(_is_number(e) for e in entry["errors"])
                and _is_number(entry.get("mean"))
                and _is_number(entry.get("std"))
            )
            if not ok:
                raise _malformed(path, expected, {n: entry})
            _check_errors(path, f"{method}.{n}", entry["errors"])
            if not math.isclose(entry["mean"], np.mean(entry["errors"]), rel_tol=1e-9, abs_tol=1e-9):
                raise ValueError(
                    f"{path}: metrics.{method}.{n}: mean {entry['mean']} is not the mean of its errors "
                    f"{entry['errors']} ({np.mean(entry['errors'])})"
                )
            n_seeds = len(entry["errors"])
            rows.append(_row(method, label, int(n), entry["mean"], entry["std"], n_seeds, source))
    return rows


def _per_split_rows(directory: Path, profile: str | None) -> list[dict]:
    """Rows from one file per (N, split seed), aggregated over the seeds: mean, sample std, count."""
    errors: dict[tuple[str, int], dict[int, float]] = {}  # (method, N) -> {split seed: test error}
    read_from: dict[tuple[int, int], Path] = {}
    for path in sorted(directory.glob("*.json")):
        metrics = _read(path, profile)
        if metrics is None:
            continue
        n, seed = metrics.get("n_labelled"), metrics.get("split_seed")
        if not (_is_int(n) and _is_int(seed)):
            found = {"n_labelled": n, "split_seed": seed}
            raise _malformed(path, "integer metrics.n_labelled and metrics.split_seed", found)
        if (n, seed) in read_from:
            raise ValueError(
                f"{path}: N={n}, split seed {seed} was already read from {read_from[n, seed]}; "
                "expected one results file per (N, split seed)"
            )
        read_from[n, seed] = path
        present = [m for m in _PER_SPLIT_METHODS if m in metrics]
        if not present:
            raise _malformed(
                path, f"metrics for at least one of {sorted(_PER_SPLIT_METHODS)}", sorted(metrics)
            )
        for method in present:
            entry = metrics[method]
            if not (isinstance(entry, dict) and _is_number(entry.get("test_error"))):
                raise _malformed(path, f'metrics.{method} as {{"test_error": <number>, ...}}', entry)
            _check_errors(path, method, [entry["test_error"]])
            errors.setdefault((method, n), {})[seed] = float(entry["test_error"])
    source = f"ours, notebook {directory.name[:2]}"
    rows = []
    for (method, n), by_seed in sorted(errors.items()):
        values = list(by_seed.values())
        label = _PER_SPLIT_METHODS[method]
        std = np.std(values, ddof=1) if len(values) > 1 else math.nan  # one split: no spread
        rows.append(_row(method, label, n, np.mean(values), std, len(values), source))
    return rows


def _row(method, label, n, mean, std, n_seeds, source) -> dict:
    return dict(zip(COLUMNS, (method, label, n, float(mean), float(std), n_seeds, source)))


def _frame(rows: list[dict]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=COLUMNS)
    return frame.astype({"N": int, "mean": float, "std": float, "n_seeds": "Int64"})


def collect(
    results_dir: str | Path = RESULTS_DIR, profile: str | None = "full", staged: str | Path | None = None
) -> pd.DataFrame:
    """Our test errors (%) as a tidy frame: one row per method and N, with columns ``COLUMNS``.
    ``profile``: only results of that profile (None: all); ``staged``: a folder whose files replace
    those of ``results_dir`` (a running notebook's own, staged metrics).
    """
    results_dir = Path(results_dir)

    def find(name: str) -> Path:  # the staged file where there is one
        own = Path(staged or results_dir) / name
        return own if own.exists() else results_dir / name

    rows = []
    for name, methods in _PER_N_FILES.items():
        if find(name).is_file():
            rows += _per_n_rows(find(name), methods, profile)
    if find(_PER_SPLIT_DIR).is_dir():
        rows += _per_split_rows(find(_PER_SPLIT_DIR), profile)
    rows.sort(key=lambda r: (_ORDER.index(r["method"]), r["N"]))
    return _frame(rows)


def published() -> pd.DataFrame:
    """The published test errors (%) of ``PUBLISHED`` in the layout of ``collect``."""
    rows = [
        _row(method, p["label"], n, mean, math.nan if std is None else std, pd.NA, p["source"])
        for method, p in PUBLISHED.items()
        for n, (mean, std) in p["errors"].items()
    ]
    return _frame(rows)


def _cell(mean: float, std: float, decimals: int = 2) -> str:
    """``3.33 ± 0.14``; a std below 0.1 keeps two significant digits (the paper's 5.72 ± 0.049)."""
    if math.isnan(std):
        return f"{mean:.{decimals}f}"
    return f"{mean:.{decimals}f} ± " + (f"{std:.2g}" if 0 < std < 0.1 else f"{std:.2f}")


def markdown_table(ours: pd.DataFrame) -> str:
    """Our rows (``collect``) and the published ones (``published``) as a Markdown table with a caption."""
    frame = pd.concat([ours, published()], ignore_index=True) if len(ours) else published()
    head = ["method", "source", "seeds", *(f"N = {n}" for n in N_LABELLED)]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * 2 + "---:|" * (len(head) - 2)]
    for _, rows in frame.groupby("method", sort=False):
        by_n = {row.N: row for row in rows.itertuples()}
        cells = []
        for n in N_LABELLED:
            row = by_n.get(n)
            if row is None:
                cells.append("—")
            else:
                one_split = not pd.isna(row.n_seeds) and row.n_seeds == 1  # no spread to report
                decimals = PUBLISHED.get(row.method, {}).get("decimals", 2)
                cells.append(_cell(row.mean, math.nan if one_split else row.std, decimals))
        seeds = [by_n[n].n_seeds if n in by_n else pd.NA for n in N_LABELLED]
        known = {int(s) for s in seeds if not pd.isna(s)}
        if not known:
            seeds_cell = "—"
        elif len(known) == 1:
            seeds_cell = str(known.pop())
        else:  # not every N has all its splits yet
            seeds_cell = " / ".join("—" if pd.isna(s) else str(int(s)) for s in seeds)
        label, source = rows["label"].iloc[0], rows["source"].iloc[0]
        lines.append("| " + " | ".join([label, source, seeds_cell, *cells]) + " |")
    caption = (
        "MNIST test error (%) with N labelled training images, mean ± sample standard deviation over "
        "label splits (the papers do not say which standard deviation they give); *seeds*: the number "
        "of label splits behind each of our numbers (one value per N where they differ); ours come from "
        "the results files of notebooks 05-07 (`results/`), each with the command that reproduces it."
    )
    return "\n".join(lines) + "\n\n" + caption


def plot(ours: pd.DataFrame):
    """Test error against N on log-log axes (``plotting.error_against_n``): ours solid, published dashed."""
    theirs = published()
    cite = theirs["source"].map({KINGMA_2014: "Kingma et al. 2014", BLOG_POST: "blog post"})
    theirs["label"] = theirs["label"] + " (" + cite + ")"
    ours = ours.assign(label=ours["label"] + " (ours)")
    title = "MNIST with few labels: this repository (solid) and published (dashed)"
    return plotting.error_against_n(ours, theirs, _COLOURS, N_LABELLED, title)


def update_readme(path: str | Path, table: str) -> Path:
    """Replace the text between ``START`` and ``END`` in ``path`` by ``table``; written atomically."""
    path = Path(path)
    text = path.read_text()
    if text.count(START) != 1 or text.count(END) != 1 or text.index(START) > text.index(END):
        raise ValueError(
            f"{path}: expected the markers {START} and {END}, once each and in this order, "
            f"found {text.count(START)} start and {text.count(END)} end marker(s)"
        )
    before, rest = text.split(START)
    after = rest.split(END)[1]
    return write_text(path, f"{before}{START}\n{table.strip()}\n{END}{after}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m vae_utils.compare", description=__doc__.split("\n")[0])
    parser.add_argument("--results-dir", type=Path, default=RESULTS_DIR, help="default: the repository's")
    parser.add_argument(
        "--profile",
        choices=("full", "smoke", "any"),
        default="full",
        help="read only the results of this profile (default: full)",
    )
    parser.add_argument("--readme", type=Path, help="rewrite the table between the markers in this file")
    args = parser.parse_args(argv)
    try:
        table = markdown_table(collect(args.results_dir, None if args.profile == "any" else args.profile))
        if args.readme is None:
            print(table)
        else:
            update_readme(args.readme, table)
            print(f"{args.readme}: comparison table rewritten")
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
