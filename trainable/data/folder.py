"""Image-folder dataset: random crops for training, full images for validation."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from .decode import to_rgb8
from .errors import DataError
from .manifest import EXTENSIONS, check_training_set, list_images, verify_dataset

__all__ = ["EXTENSIONS", "ImageFolder", "random_crop", "read_rgb", "read_rgb_uint8", "to_float"]


def read_rgb(path: Path) -> torch.Tensor:
    """Image file → [3,H,W] float in [0,1] (greyscale, 16-bit and RGBA converted to RGB: :func:`to_rgb8`)."""
    return to_float(read_rgb_uint8(path))


def read_rgb_uint8(path: Path) -> torch.Tensor:
    """Image file → [3,H,W] uint8 (a quarter of the float's memory: validation images are kept decoded)."""
    try:
        with Image.open(path) as img:
            array = np.asarray(to_rgb8(img))
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise DataError(f"corrupt image: {path} ({exc})") from None
    return torch.from_numpy(array.copy()).permute(2, 0, 1).contiguous()


def to_float(x: torch.Tensor) -> torch.Tensor:
    """uint8 → float in [0,1], bit-identical to ``np.float32(v) / 255`` on any device."""
    return x.float().div_(255)


def random_crop(path: Path, p: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """A random ``p``×``p`` crop of ``path`` with random flips, [3,p,p] float in [0,1].

    Cropped and flipped on the uint8 image, converted to float last (converting the whole
    2K image first cost half the time); a PNG is decoded only down to the crop's last row
    (its rows are stored top to bottom), a JPEG straight to RGB (``draft``, at full scale: a
    reduced-scale decode would change the training crops). Images smaller than
    the patch are edge-padded (verification keeps that under MAX_PADDING of a crop). The draws (top, left, flip, flip) come from ``generator``,
    else torch's global RNG, in the order the full-image reference takes them.
    """
    try:
        with Image.open(path) as img:
            if img.format == "JPEG" and img.mode in ("RGB", "YCbCr"):
                img.draft("RGB", img.size)
            w, h = img.size
            top = int(torch.randint(0, max(h, p) - p + 1, (), generator=generator))
            left = int(torch.randint(0, max(w, p) - p + 1, (), generator=generator))
            if img.format == "PNG" and len(img.tile) == 1 and img.tile[0].codec_name == "zip" \
                    and not img.info.get("interlace"):
                _decode_rows(img, top + min(p, h))
            img = img.crop((left, top, left + min(p, w), top + min(p, h)))
            array = np.asarray(to_rgb8(img))
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise DataError(f"corrupt image: {path} ({exc})") from None
    if array.shape[0] < p or array.shape[1] < p:
        array = np.pad(array, ((0, p - array.shape[0]), (0, p - array.shape[1]), (0, 0)), mode="edge")
    if torch.rand((), generator=generator) < 0.5:
        array = array[:, ::-1]
    if torch.rand((), generator=generator) < 0.5:
        array = array[::-1]
    return to_float(torch.from_numpy(array.copy()).permute(2, 0, 1).contiguous())


def _decode_rows(img: Image.Image, rows: int) -> None:
    """Make the pending decode of a non-interlaced PNG stop after its first ``rows`` rows."""
    img.tile = [img.tile[0]._replace(extents=(0, 0, img.width, rows))]
    img._size = (img.width, rows)


class ImageFolder(torch.utils.data.Dataset):
    """All images under ``root`` (recursive, sorted, extension case-insensitive).

    Training items are random ``patch_size`` crops with random flips, drawn from torch's
    RNG so ``torch.manual_seed`` (and DataLoader worker seeding) makes them reproducible;
    images smaller than the patch are edge-padded (replicate: valid for any size, unlike
    reflect). Validation items (``train=False``) are whole images. A corrupt file raises
    :class:`DataError` naming it; :meth:`verify` checks every file up front through the
    cached dataset manifest (:mod:`.manifest`), so only new or changed files are decoded.
    """

    def __init__(self, root: str | Path, patch_size: int | None = 256, train: bool = True):
        self.root = Path(root)
        self.files = list(list_images(self.root))
        self.patch_size, self.train = patch_size, train

    def __len__(self) -> int:
        return len(self.files)

    def verify(self) -> None:
        """Check that every file decodes, raising one-line :class:`DataError` on a corrupt one;
        a training folder must also be fit to train at this patch size (:func:`check_training_set`).

        Call before training so a bad file fails the run at once, not hours in. Files
        unchanged since the manifest last verified them are not decoded again.
        """
        if self.train and self.patch_size is not None:
            check_training_set(self.root, self.patch_size)
        else:
            verify_dataset(self.root)

    def __getitem__(self, item: int | tuple[int, int]) -> torch.Tensor:
        """``index``, or ``(index, crop_seed)``: the crop then depends on the seed alone, not on
        which worker (or how many) loads it, nor on what else drew from torch's RNG."""
        index, seed = item if isinstance(item, tuple) else (item, None)
        if not self.train or self.patch_size is None:
            return read_rgb(self.files[index])
        generator = torch.Generator().manual_seed(seed) if seed is not None else None
        return random_crop(self.files[index], self.patch_size, generator)
