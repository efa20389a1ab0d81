"""The built-in ``sample`` dataset: images bundled inside scikit-image (no network).

Written once as PNGs into a cache directory (``$HPCM_TUNE_CACHE`` or
``~/.cache/hpcm-tune``), atomically, so concurrent Ray trials can share it.
Validation images keep odd sizes so that padding is exercised.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from .folder import DataError

SPLITS: dict[str, tuple[str, ...]] = {
    "train": ("astronaut", "coffee", "rocket", "hubble_deep_field", "retina", "immunohistochemistry",
              "camera", "brick", "grass", "gravel", "moon"),
    "val": ("chelsea", "colorwheel", "logo"),
}
MAX_SIDE = 640  # large images are downscaled so that CPU epochs stay short


def cache_root(root: str | Path | None = None) -> Path:
    if root is not None:
        return Path(root)
    return Path(os.environ.get("HPCM_TUNE_CACHE", Path.home() / ".cache" / "hpcm-tune")) / "sample"


def _write_split(split: str, target: Path) -> None:
    from skimage import data as skdata

    tmp = Path(tempfile.mkdtemp(prefix=f".{split}.", dir=target.parent))
    try:
        for name in SPLITS[split]:
            img = Image.fromarray(np.asarray(getattr(skdata, name)())).convert("RGB")
            if max(img.size) > MAX_SIDE:
                scale = MAX_SIDE / max(img.size)
                img = img.resize((round(img.width * scale), round(img.height * scale)), Image.BICUBIC)
            img.save(tmp / f"{name}.png")
        try:
            tmp.rename(target)
        except OSError:  # another process won the race; its copy is identical
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def sample_dataset_dir(split: str, root: str | Path | None = None) -> Path:
    """Folder of the built-in sample ``split`` ("train" or "val"), created on first use."""
    if split not in SPLITS:
        raise DataError(f"unknown sample split {split!r}; choose one of {', '.join(SPLITS)}")
    target = cache_root(root) / split
    if not target.is_dir():
        target.parent.mkdir(parents=True, exist_ok=True)
        _write_split(split, target)
    return target


def resolve_dataset(path_or_name: str | None, split: str) -> Path:
    """None or "sample" → the built-in split; otherwise an existing directory."""
    if path_or_name in (None, "", "sample"):
        return sample_dataset_dir(split)
    path = Path(path_or_name).expanduser()
    if not path.is_dir():
        raise DataError(f"dataset directory not found: {path}")
    return path
