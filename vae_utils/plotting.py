"""Figures shared by the notebooks: image grids, reconstructions, latent plots, training curves.

Each function returns a ``matplotlib.figure.Figure`` so that notebooks can show it and ``repro`` can
save it. Images are grey, ``(n, h, w)`` or ``(n, h, w, 1)``, or RGB, ``(n, h, w, 3)``, with values in
[0, 1]. Introduced in ``notebooks/01_vae_mnist.ipynb``; the interpolation grids and latent traversals
in ``notebooks/03_cifar_horse_car_interpolation.ipynb``.
"""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns
from matplotlib.ticker import FixedLocator, NullFormatter, ScalarFormatter

from .checks import positive_int
from .latent import prior_quantiles, traverse

__all__ = [
    "error_against_n",
    "image_grid",
    "interpolation_grid",
    "latent_manifold",
    "latent_scatter",
    "latent_traversal",
    "reconstructions",
    "training_curves",
]


def _as_images(images, batch_axes=1):
    """Drop a single grey channel; check for ``batch_axes`` leading axes, then ``(h, w)`` or ``(h, w, 3)``."""
    images = np.asarray(images)
    if images.size and np.issubdtype(images.dtype, np.integer) and images.max() > 1:
        raise ValueError(
            f"expected pixel values in [0, 1], found integers up to {images.max()} "
            "(8-bit images? divide them by 255)"
        )
    if images.size and np.issubdtype(images.dtype, np.floating) and not np.all(np.isfinite(images)):
        raise ValueError("the images hold NaN or infinite pixels: expected values in [0, 1]")
    batch = "(n, " if batch_axes == 1 else "(rows, cols, "
    if images.ndim == batch_axes + 3 and images.shape[-1] == 1:
        images = images[..., 0]
    if images.ndim not in (batch_axes + 2, batch_axes + 3):
        raise ValueError(
            f"expected a batch of images {batch}h, w) or {batch}h, w, channels), found shape {images.shape}"
        )
    if images.ndim == batch_axes + 3 and images.shape[-1] != 3:
        raise ValueError(f"expected grey (1 channel) or RGB (3 channels) images, found shape {images.shape}")
    return images


def _show(ax, image):
    """One image in one panel, without axes: grey images on a fixed [0, 1] grey scale, pixel for pixel."""
    ax.imshow(image, cmap="gray" if image.ndim == 2 else None, vmin=0, vmax=1, interpolation="nearest")
    ax.axis("off")


def _label_row(ax, label):
    """Write ``label`` to the left of the panel ``ax`` (the first of a row); visible with axes off."""
    ax.text(-0.08, 0.5, str(label), transform=ax.transAxes, ha="right", va="center", fontsize=8)


def _check_labels(labels, count, what):
    if labels is not None and len(labels) != count:
        raise ValueError(f"{count} {what} of images but {len(labels)} {what[:-1]} labels")


def image_grid(images, n_cols=10, titles=None, scale=1.0, suptitle=None):
    """Grey or RGB images in a grid of ``n_cols`` columns, one panel each. Introduced in notebook 01."""
    images = _as_images(images)
    n_cols = positive_int("n_cols", n_cols)
    if len(images) == 0:
        raise ValueError("image_grid needs at least one image, found none")
    n_rows = math.ceil(len(images) / n_cols)
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(scale * n_cols, scale * n_rows), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < len(images):
            _show(ax, images[i])
            if titles is not None:
                ax.set_title(str(titles[i]), fontsize=8)
    if suptitle:
        fig.suptitle(suptitle)
    fig.tight_layout()
    return fig


def reconstructions(x, x_reconstructed, n=10):
    """Originals (top row, "input") above their reconstructions. Introduced in notebook 01."""
    x, x_reconstructed = _as_images(x)[:n], _as_images(x_reconstructed)[:n]
    if x.shape != x_reconstructed.shape:
        raise ValueError(f"originals {x.shape} and reconstructions {x_reconstructed.shape} differ in shape")
    return interpolation_grid(np.stack([x, x_reconstructed]), row_labels=["input", "reconstruction"])


def interpolation_grid(images, row_labels=None, col_labels=None, scale=1.0, title=None):
    """Images of shape ``(rows, cols, h, w[, c])`` as a rows x cols grid of panels.

    Labels to the left of each row and above the first row. Introduced in notebook 02.
    """
    images = _as_images(images, batch_axes=2)
    n_rows, n_cols = images.shape[:2]
    _check_labels(row_labels, n_rows, "rows")
    _check_labels(col_labels, n_cols, "columns")
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(scale * n_cols, scale * n_rows), squeeze=False)
    for i in range(n_rows):
        for j in range(n_cols):
            _show(axes[i, j], images[i, j])
        if row_labels is not None:
            _label_row(axes[i, 0], row_labels[i])
    if col_labels is not None:
        for j, label in enumerate(col_labels):
            axes[0, j].set_title(str(label), fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def latent_traversal(decode, z, dims, values, image_shape, scale=1.0):
    """Decode ``z`` with one coordinate swept through ``values``: a row per dimension in ``dims``.
    ``decode`` maps float32 codes ``(m, d)`` to images in [0, 1] and is called once, with all the codes.
    Introduced in notebook 02.
    """
    dims, values = list(dims), np.asarray(values, dtype=np.float64)
    if not dims:
        raise ValueError("latent_traversal needs at least one dimension in dims, found none")
    codes = np.concatenate([traverse(z, dim, values) for dim in dims])
    images = np.asarray(decode(codes))
    expected = (len(codes), *image_shape)
    if images.size != np.prod(expected):
        raise ValueError(
            f"decode should return {len(codes)} images of shape {tuple(image_shape)}, found {images.shape}"
        )
    images = images.reshape(len(dims), len(values), *image_shape)
    return interpolation_grid(
        images, row_labels=[f"z_{dim}" for dim in dims], col_labels=[f"{v:.3g}" for v in values], scale=scale
    )


def latent_manifold(decode, n=20, image_shape=(28, 28), scale=0.5):
    """Decode an ``n`` x ``n`` grid over a 2-D latent space and tile the images.
    The grid points are quantiles of the prior (Kingma & Welling, Fig. 4); ``decode`` maps ``(m, 2)``
    codes to images in [0, 1]. Introduced in notebook 01.
    """
    quantiles = prior_quantiles(n)
    z1, z2 = np.meshgrid(quantiles, quantiles[::-1])  # z2 grows upwards, as on a plot's y axis
    z = np.stack([z1.ravel(), z2.ravel()], axis=-1).astype("float32")
    images = np.asarray(decode(z)).reshape(n, n, *image_shape)
    h, w = image_shape[:2]
    canvas = images.transpose(0, 2, 1, 3, *range(4, images.ndim)).reshape(n * h, n * w, *image_shape[2:])
    fig, ax = plt.subplots(figsize=(scale * n, scale * n))
    ax.imshow(canvas, cmap="gray", vmin=0, vmax=1, extent=(0, n, 0, n), interpolation="nearest")
    ticks = np.arange(n) + 0.5
    ax.set_xticks(ticks[::4], [f"{q:.1f}" for q in quantiles[::4]])
    ax.set_yticks(ticks[::4], [f"{q:.1f}" for q in quantiles[::4]])
    ax.set_xlabel("$z_1$")
    ax.set_ylabel("$z_2$")
    fig.tight_layout()
    return fig


def latent_scatter(z, labels, max_points=5000, seed=0):
    """2-D codes coloured by label (a random subset of ``max_points``). Introduced in notebook 01."""
    z = np.asarray(z)
    labels = np.asarray(labels).reshape(-1)
    if z.ndim != 2 or z.shape[1] != 2:
        raise ValueError(f"latent_scatter expects 2-D codes of shape (n, 2), found {z.shape}")
    if len(labels) != len(z):
        raise ValueError(f"{len(z)} codes but {len(labels)} labels")
    keep = np.random.default_rng(seed).permutation(len(z))[:max_points]
    fig, ax = plt.subplots(figsize=(6.5, 5.5))
    sns.scatterplot(
        x=z[keep, 0],
        y=z[keep, 1],
        hue=labels[keep],
        palette="tab10",
        s=6,
        linewidth=0,
        legend="full",
        ax=ax,
    )
    ax.set_xlabel("$z_1$")
    ax.set_ylabel("$z_2$")
    ax.legend(title="label", markerscale=2, bbox_to_anchor=(1.02, 1), loc="upper left")
    fig.tight_layout()
    return fig


def training_curves(history, keys=None):
    """A panel per metric of a Keras ``History`` (or its dict), with validation. Introduced in notebook 01."""
    logs = getattr(history, "history", history)
    keys = keys or [k for k in logs if not k.startswith("val_")]
    fig, axes = plt.subplots(1, len(keys), figsize=(4 * len(keys), 3), squeeze=False)
    for ax, key in zip(axes.flat, keys):
        epochs = np.arange(1, len(logs[key]) + 1)
        ax.plot(epochs, logs[key], label="train")
        if f"val_{key}" in logs:
            ax.plot(epochs, logs[f"val_{key}"], label="validation")
            ax.legend()
        ax.set_title(key)
        ax.set_xlabel("epoch")
    fig.tight_layout()
    return fig


def error_against_n(ours, theirs, colours, n_ticks, title):
    """Test error (%) against N labels, log-log: ``ours`` solid with error bars, ``theirs`` dashed (frames
    of method, label, N, mean, std, as ``compare`` builds them), coloured by method.
    Introduced in notebook 07."""
    fig, ax = plt.subplots(figsize=(9.5, 5))
    handles = []  # ours first in the legend (matplotlib would list the error-bar containers last)
    for method, rows in ours.groupby("method", sort=False):
        rows = rows.sort_values("N")
        style = dict(color=colours[method], marker="o", linestyle="-", capsize=3)
        handles.append(
            ax.errorbar(rows["N"], rows["mean"], yerr=rows["std"], label=rows["label"].iloc[0], **style)
        )
    for method, rows in theirs.groupby("method", sort=False):
        rows = rows.sort_values("N")
        single = len(rows) == 1  # a single number: a cross, no line
        style = dict(color=colours[method], linestyle="--", marker="x" if single else ".", markersize=9)
        handles += ax.plot(rows["N"], rows["mean"], label=rows["label"].iloc[0], **style)
    ax.set(
        xscale="log", yscale="log", xlabel="labelled training images N", ylabel="test error (%)", title=title
    )
    ax.xaxis.set_major_locator(FixedLocator(n_ticks))
    ax.yaxis.set_major_locator(FixedLocator([1, 2, 5, 10, 20, 50, 100]))
    for axis in (ax.xaxis, ax.yaxis):
        axis.set_major_formatter(ScalarFormatter())
        axis.set_minor_formatter(NullFormatter())
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(handles=handles, fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1))
    fig.tight_layout()
    return fig
