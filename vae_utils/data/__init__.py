"""Datasets as NumPy arrays: a registry with checksums, an offline mirror and a download cache.

``load(name, **options)`` returns a dataset as a dict of NumPy arrays. It looks for the dataset's files in
three places, in order:

1. the cache directory (``data/`` in the repository, or ``$VAE_DATA_DIR``), where downloads are kept;
2. a read-only mirror of prepared files (``$VAE_DATA_MIRROR``), each checked against the mirror's
   ``SHA256SUMS`` before use;
3. the dataset's canonical source, downloaded with pooch and verified against the canonical checksum.
   With ``VAE_OFFLINE=1`` this step is forbidden and a missing file is an error that says where it was
   looked for.

``mnist`` is published as the prepared ``.npz`` (verified by sha256 on every load); ``svhn``'s canonical
``.mat`` files are cached as published (md5 on every load); ``cifar10``, ``lfw``, ``frey`` and ``olivetti``
are prepared here from verified sources, and their cached ``.npz`` is checked by structure (keys, shapes,
dtypes). A failure at any step leaves nothing in the cache.

Modules: ``base`` (registry entries, array checks), ``files`` (cache, mirror, checksums, downloads),
``svhn``, ``cifar10``, ``faces`` (one per source family), ``registry`` (``DATASETS``, ``load``) and
``batches`` (binarisation, label splits, training batches, M2's mixed batches).

Introduced in ``notebooks/01_vae_mnist.ipynb``.
"""

from .base import ArraySpec, DataError, Dataset, Source
from .batches import (
    SEMI_SUPERVISED_KEYS,
    BinarizedBatches,
    SemiSupervisedBatches,
    ShuffledBatches,
    binarize,
    labelled_split,
    sample_gaussian,
)
from .cifar10 import CIFAR10_LABEL_NAMES
from .files import data_dir, sha256sum
from .registry import DATASETS, load
from .svhn import read_svhn_mat, write_svhn_mat

__all__ = [
    "CIFAR10_LABEL_NAMES",
    "DATASETS",
    "SEMI_SUPERVISED_KEYS",
    "ArraySpec",
    "BinarizedBatches",
    "SemiSupervisedBatches",
    "ShuffledBatches",
    "DataError",
    "Dataset",
    "Source",
    "binarize",
    "data_dir",
    "labelled_split",
    "load",
    "read_svhn_mat",
    "sample_gaussian",
    "sha256sum",
    "write_svhn_mat",
]
