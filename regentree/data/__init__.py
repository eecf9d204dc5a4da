"""Datasets and input checks: IDX / npz / image folders / embedded digits -> float32 images in [0, 1].

Every image array that enters regentree passes through `validate_images`, which returns a C-contiguous
float32 array of shape (n_samples, n_features) with values in [0, 1]. Loaders return a frozen `Dataset`
whose labels are int64 indices into `class_names`. This package never imports torch.

Modules, each importing only those above it: `validation` (input checks, shared helpers), `dataset`
(the `Dataset` container, label encoding, splits), `idx` (IDX files and folders), `loaders`
(`load_dataset` and its sources), `probes` (images to classify).
"""

from regentree.data.validation import PathLike, class_indices, validate_images, validate_labels
from regentree.data.dataset import SPLITS, Dataset, capped_subsample, stratified_subsample, train_test_split_dataset
from regentree.data.idx import load_idx
from regentree.data.loaders import IMAGE_SUFFIXES, held_out_split, load_dataset, load_digits_dataset
from regentree.data.probes import load_probes

__all__ = [
    "IMAGE_SUFFIXES",
    "SPLITS",
    "Dataset",
    "PathLike",
    "capped_subsample",
    "class_indices",
    "held_out_split",
    "load_dataset",
    "load_digits_dataset",
    "load_idx",
    "load_probes",
    "stratified_subsample",
    "train_test_split_dataset",
    "validate_images",
    "validate_labels",
]
