"""A trained 2-D decoder, exported for the site's latent explorer (``docs/_extra/explorer/``), where a reader
drags a point through the latent space and the page decodes it at every move.

The export is one JSON file next to the run's figures: the decoder's dense layers (float16, base64),
the test set's posterior means (float16) with their labels, the prior's quantile grid, the error that
float16 costs against the trained decoder (measured at export), and the run's provenance.
``decode`` is the page's arithmetic in NumPy. Introduced in ``notebooks/01_vae_mnist.ipynb``.
"""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

import keras
import numpy as np
from scipy.special import expit

from .atomic import write_json
from .identity import code_version, identity_key, model_structure
from .latent import prior_quantiles

__all__ = ["FORMAT", "array_from_json", "chain_from_json", "decode", "dense_chain", "describe", "export"]

#: The format of an export; ``docs/_extra/explorer/explorer.js`` reads this version.
FORMAT = "vae-latent-explorer/1"
#: The activations the page evaluates (in NumPy here), and what each decoder likelihood shows as the image.
ACTIVATIONS = {
    "linear": lambda a: a,
    "relu": lambda a: np.maximum(a, 0),
    "softplus": lambda a: np.logaddexp(0, a),
    "sigmoid": expit,
    "tanh": np.tanh,
}
OUTPUTS = {"bernoulli": "sigmoid", "logistic": "clip"}
GRID = 20  # the quantile grid of the notebooks' manifolds, drawn as the page's optional overlay


def dense_chain(decoder, likelihood: str) -> list[tuple[np.ndarray, np.ndarray, str]]:
    """``(kernel, bias, activation)`` of each dense layer of a decoder from ``models.dense_decoder``
    (codes in, one grey image out); for a logistic decoder, only the locations' outputs."""
    if likelihood not in OUTPUTS:
        raise ValueError(f"likelihood must be one of {tuple(OUTPUTS)}, found {likelihood!r}")
    kinds = [type(layer).__name__ for layer in decoder.layers]
    if kinds[1:-1] != ["Dense"] * (len(kinds) - 2) or kinds[-1] != "Reshape" or len(kinds) < 3:
        raise ValueError(
            f"expected a decoder of dense layers then a Reshape (models.dense_decoder), found {kinds}"
        )
    shape = tuple(decoder.output_shape[1:])
    channels = 1 if len(shape) == 2 else shape[-1] // (2 if likelihood == "logistic" else 1)
    if channels != 1:
        raise ValueError(f"the explorer shows grey images; the decoder outputs {shape}")
    chain = []
    for layer in decoder.layers[1:-1]:
        activation = keras.activations.serialize(layer.activation)
        activation = activation if isinstance(activation, str) else activation.get("config", {}).get("name")
        if activation not in ACTIVATIONS:
            raise ValueError(f"the page evaluates the activations {tuple(ACTIVATIONS)}, found {activation!r}")
        kernel, bias = (keras.ops.convert_to_numpy(w).astype(np.float32) for w in (layer.kernel, layer.bias))
        chain.append((kernel, bias, activation))
    if likelihood == "logistic":  # (h, w, 2): a location, then a log-scale, per pixel
        kernel, bias, activation = chain[-1]
        chain[-1] = (kernel[:, 0::2], bias[0::2], activation)
    return chain


def decode(chain, z, output: str) -> np.ndarray:
    """The images ``(n, pixels)`` in [0, 1] that ``chain`` decodes from codes ``z``: the page's arithmetic."""
    h = np.asarray(z, dtype=np.float32)
    for kernel, bias, activation in chain:
        h = ACTIVATIONS[activation](h @ kernel + bias)
    return expit(h) if output == "sigmoid" else np.clip(h, 0, 1)


def _array(values, dtype) -> dict:
    values = np.ascontiguousarray(values, dtype=np.dtype(dtype).newbyteorder("<"))
    return {
        "shape": list(values.shape),
        "dtype": np.dtype(dtype).name,
        "base64": base64.b64encode(values).decode(),
    }


def array_from_json(entry: dict) -> np.ndarray:
    """An array stored by ``export`` (little-endian bytes in base64), as NumPy."""
    raw = base64.b64decode(entry["base64"])
    return np.frombuffer(raw, dtype=np.dtype(entry["dtype"]).newbyteorder("<")).reshape(entry["shape"])


def chain_from_json(payload: dict) -> list[tuple[np.ndarray, np.ndarray, str]]:
    """The stored (float16) ``(kernel, bias, activation)`` chain of an export, for ``decode``."""
    return [
        (array_from_json(layer["kernel"]), array_from_json(layer["bias"]), layer["activation"])
        for layer in payload["layers"]
    ]


def _shown(params, likelihood) -> np.ndarray:
    """The image the notebooks show for a decoder's output: Bernoulli probabilities, clipped locations."""
    params = np.asarray(params, dtype=np.float64).reshape(len(params), -1)
    return expit(params) if likelihood == "bernoulli" else np.clip(params[:, 0::2], 0, 1)


def _checked(codes, labels):
    """``codes`` as float32 ``(n, 2)``, ``labels`` as ``n`` integers in [0, 256) or None; else an error."""
    codes = np.asarray(codes, dtype=np.float32)
    if codes.ndim != 2 or codes.shape[1] != 2 or not np.all(np.isfinite(codes)):
        raise ValueError(
            f"codes must be finite 2-D posterior means of shape (n, 2), found shape {codes.shape}"
        )
    if labels is not None:
        labels = np.asarray(labels)
        if (
            labels.shape != (len(codes),)
            or labels.dtype.kind not in "iu"
            or not np.all((0 <= labels) & (labels < 256))
        ):
            raise ValueError(
                f"labels must be integers in [0, 256), one per code: shape ({len(codes)},), "
                f"found shape {labels.shape} of {labels.dtype}"
            )
    return codes, labels


def _float16_error(decoder, stored, grid, codes, likelihood) -> dict:
    """What float16 costs: the trained decoder against the stored one, on the prior's grid and the codes."""
    z = np.concatenate([np.stack(np.meshgrid(grid, grid), -1).reshape(-1, 2), codes[:1000]])
    z = z.astype(np.float32)
    trained = _shown(decoder.predict(z, batch_size=500, verbose=0), likelihood)
    error = np.abs(trained - decode(stored, z, OUTPUTS[likelihood]))
    return {"max": float(error.max()), "mean": float(error.mean()), "codes": len(z)}


def export(run, name, model, codes, *, title, settings, labels=None, likelihood="bernoulli") -> Path:
    """Write ``<figures>/<run>_explorer_<name>.json``: the 2-D decoder of the trained ``model``, ``codes``
    (``(n, 2)`` posterior means), their ``labels``; ``settings`` join its identity. Notebooks 01 and 04."""
    codes, labels = _checked(codes, labels)
    decoder = model.decoder
    if decoder.input_shape != (None, 2):
        raise ValueError(f"the explorer walks a 2-D latent space; the decoder takes {decoder.input_shape}")
    chain = dense_chain(decoder, likelihood)
    stored = [(k.astype(np.float16), b.astype(np.float16), a) for k, b, a in chain]
    grid = prior_quantiles(GRID)
    error = _float16_error(decoder, stored, grid, codes, likelihood)
    weights = b"".join(k.tobytes() + b.tobytes() for k, b, _ in stored)
    identity = {**settings, "code": code_version(model), "layers": model_structure(model)}
    payload = {
        "format": FORMAT,
        "name": name,
        "title": title,
        "image": {"height": int(decoder.output_shape[1]), "width": int(decoder.output_shape[2])},
        "output": OUTPUTS[likelihood],
        "layers": [
            {"kernel": _array(k, np.float16), "bias": _array(b, np.float16), "activation": a}
            for k, b, a in stored
        ],
        "codes": _array(codes, np.float16),
        "labels": None if labels is None else _array(labels, np.uint8),
        "label_names": None if labels is None else [str(k) for k in range(int(labels.max()) + 1)],
        "grid": [round(float(q), 6) for q in grid],
        "float16_error": error,
        "provenance": {
            "notebook": run.name,
            "profile": run.profile,
            "created": run.started_at.isoformat(timespec="seconds"),
            "identity": identity_key(identity),
            "backend": keras.backend.backend(),
            "weights_sha256": hashlib.sha256(weights).hexdigest(),
            "reproduce": run.reproduce,
        },
    }
    return write_json(run.figure_path(f"explorer_{name}", ".json"), payload)


def describe(path) -> str:
    """One line on an export: its file, size, codes and what float16 costs. Notebooks 01 and 04."""
    payload = json.loads(Path(path).read_text())
    error = payload["float16_error"]["max"] * 255
    n = payload["codes"]["shape"][0]
    return (
        f"{Path(path).name}: {Path(path).stat().st_size / 1e6:.2f} MB, {n:,} test codes; float16 weights "
        f"move a pixel by at most {error:.2f} of 255 grey levels"
    )
