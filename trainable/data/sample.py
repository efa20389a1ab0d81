"""The built-in ``sample`` dataset: images bundled inside scikit-image (no network).

Split (disjoint):

- ``train``: astronaut, coffee, rocket, hubble_deep_field, retina, immunohistochemistry,
  camera, brick, grass, gravel, moon (greyscale ones converted to RGB; long side
  capped at ``MAX_SIDE`` so CPU epochs stay short).
- ``val``: chelsea (300×451), colorwheel (370×371), logo (500×500, RGBA → RGB), kept at
  their native sizes: dimensions that are not multiples of the model stride exercise padding.
  The search chooses configurations on this split.
- ``test``: motorcycle (left view of ``stereo_motorcycle``, 500×741, colour), coins
  (303×384), clock (300×400), page (191×384, a scanned text page), greyscale ones stored
  as RGB; native sizes, none a multiple of 64 on both sides. Held out for
  ``python -m analysis.evaluate``: small enough that coding it with ~10 Tiny models takes
  seconds on a CPU, too small (and too grey) to be more than a sanity check of a verdict.

PNGs are written once into ``<cache>/<split>/`` where ``<cache>`` is the ``root``
argument, else ``$HPCM_TUNE_CACHE/sample``, else ``~/.cache/hpcm-tune/sample``. Each
split is written to a temporary folder and renamed into place, so concurrent processes
(Ray trials) never see a partial split and the loser of a race discards its copy.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from .errors import DataError

SPLITS: dict[str, tuple[str, ...]] = {
    "train": ("astronaut", "coffee", "rocket", "hubble_deep_field", "retina", "immunohistochemistry",
              "camera", "brick", "grass", "gravel", "moon"),
    "val": ("chelsea", "colorwheel", "logo"),
    "test": ("motorcycle", "coins", "clock", "page"),
}
# Images whose scikit-image loader has another name or returns more than one array.
_LOADERS = {"motorcycle": lambda skdata: skdata.stereo_motorcycle()[0]}
MAX_SIDE = 640  # long side of train images; larger ones are downscaled


def cache_root(root: str | Path | None = None) -> Path:
    """Folder holding the sample splits (see the module docstring for the lookup order)."""
    if root is not None:
        return Path(root)
    return Path(os.environ.get("HPCM_TUNE_CACHE", Path.home() / ".cache" / "hpcm-tune")) / "sample"


def _write_split(split: str, target: Path) -> None:
    from skimage import data as skdata  # deferred: only needed on the first call

    tmp = Path(tempfile.mkdtemp(prefix=f".{split}.", dir=target.parent))
    try:
        for name in SPLITS[split]:
            load = _LOADERS.get(name, lambda module: getattr(module, name)())
            img = Image.fromarray(np.asarray(load(skdata))).convert("RGB")
            if split == "train" and max(img.size) > MAX_SIDE:
                scale = MAX_SIDE / max(img.size)
                img = img.resize((round(img.width * scale), round(img.height * scale)), Image.BICUBIC)
            img.save(tmp / f"{name}.png")
        try:
            tmp.rename(target)
        except OSError:
            if not target.is_dir():  # not a lost race (the winner's copy is identical)
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def sample_dataset_dir(split: str, root: str | Path | None = None) -> Path:
    """Folder of the built-in sample ``split`` ("train", "val" or "test"), created on first use."""
    if split not in SPLITS:
        raise DataError(f"unknown sample split {split!r}; choose one of {', '.join(SPLITS)}")
    target = cache_root(root) / split
    if not target.is_dir():
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            _write_split(split, target)
        except OSError as exc:
            raise DataError(f"cannot write sample dataset to {target} ({exc}); "
                            "set HPCM_TUNE_CACHE to a writable folder") from None
    return target
