"""Datasets: image folders, their verified manifest, and the built-in scikit-image ``sample`` set."""
from .errors import DataError
from .folder import ImageFolder, read_rgb
from .manifest import dataset_manifest, list_images, verify_dataset
from .resolve import resolve_dataset
from .sample import SPLITS, sample_dataset_dir

__all__ = ["DataError", "ImageFolder", "read_rgb", "SPLITS", "dataset_manifest", "list_images", "resolve_dataset",
           "sample_dataset_dir", "verify_dataset"]
