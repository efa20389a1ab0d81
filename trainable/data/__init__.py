"""Datasets: image folders and the built-in scikit-image ``sample`` set (the default)."""
from .errors import DataError
from .folder import ImageFolder, read_rgb
from .resolve import resolve_dataset
from .sample import SPLITS, sample_dataset_dir

__all__ = ["DataError", "ImageFolder", "read_rgb", "SPLITS", "resolve_dataset", "sample_dataset_dir"]
