"""Image-folder dataset: random crops for training, full images for validation."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, UnidentifiedImageError

from .errors import DataError
from .manifest import EXTENSIONS, list_images, verify_dataset

__all__ = ["EXTENSIONS", "ImageFolder", "read_rgb"]


def read_rgb(path: Path) -> torch.Tensor:
    """Image file → [3,H,W] float in [0,1] (greyscale and RGBA converted to RGB)."""
    try:
        with Image.open(path) as img:
            array = np.asarray(img.convert("RGB"), dtype=np.float32) / 255.0
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise DataError(f"corrupt image: {path} ({exc})") from None
    return torch.from_numpy(array).permute(2, 0, 1).contiguous()


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
        """Check that every file decodes, raising one-line :class:`DataError` on a corrupt one.

        Call before training so a bad file fails the run at once, not hours in. Files
        unchanged since the manifest last verified them are not decoded again.
        """
        verify_dataset(self.root)

    def __getitem__(self, index: int) -> torch.Tensor:
        x = read_rgb(self.files[index])
        if not self.train or self.patch_size is None:
            return x
        p = self.patch_size
        h, w = x.shape[-2:]
        if h < p or w < p:
            x = F.pad(x.unsqueeze(0), (0, max(0, p - w), 0, max(0, p - h)), mode="replicate").squeeze(0)
            h, w = x.shape[-2:]
        top = int(torch.randint(0, h - p + 1, ()))
        left = int(torch.randint(0, w - p + 1, ()))
        x = x[:, top:top + p, left:left + p]
        if torch.rand(()) < 0.5:
            x = x.flip(-1)
        if torch.rand(()) < 0.5:
            x = x.flip(-2)
        return x.contiguous()
