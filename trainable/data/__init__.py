"""Datasets: image folders, their verified manifest, the trial's batch stream, and the built-in scikit-image ``sample`` set."""
from .errors import DataError
from .folder import ImageFolder, read_rgb, read_rgb_uint8, to_float
from .decode import to_rgb8
from .manifest import MIN_TRAIN_IMAGES, check_training_set, dataset_manifest, list_images, verify_dataset
from .resolve import resolve_dataset
from .sample import SPLITS, sample_dataset_dir
from .stream import batch_stream, default_workers

__all__ = ["MIN_TRAIN_IMAGES", "check_training_set", "to_rgb8", "DataError", "ImageFolder", "read_rgb", "read_rgb_uint8", "to_float", "SPLITS", "batch_stream",
           "dataset_manifest", "default_workers", "list_images", "resolve_dataset", "sample_dataset_dir",
           "verify_dataset"]
