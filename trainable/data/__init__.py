"""Datasets: image folders and the built-in scikit-image ``sample`` set (the default)."""
from .folder import DataError, ImageFolder, read_rgb
from .sample import SPLITS, resolve_dataset, sample_dataset_dir

__all__ = ["DataError", "ImageFolder", "read_rgb", "SPLITS", "resolve_dataset", "sample_dataset_dir"]
