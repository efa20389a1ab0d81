"""Any image file's pixels as the 8-bit RGB a model sees, and whether a folder can train.

``convert("RGB")`` is right for 8-bit greyscale, palette, CMYK and alpha images (alpha is
dropped: a codec codes the colour channels), but not for 16-bit greyscale (PNG ``I;16``):
Pillow clips it to 0..255, so a ramp of true mean 0.5 reads as 0.998. Those are scaled
(v / 257, rounded: 65535 → 255); floating-point images are refused.
"""
from __future__ import annotations

import numpy as np
from PIL import Image

HIGH_DEPTH = frozenset({"I;16", "I;16L", "I;16B", "I;16N", "I"})   # 16-bit greyscale ("I": 32-bit ints)
MAX_16BIT = 65535


def to_rgb8(img: Image.Image) -> Image.Image:
    """``img`` as 8-bit RGB; a ValueError (one line) for pixels with no 8-bit reading."""
    if img.mode in HIGH_DEPTH:
        values = np.asarray(img).astype(np.int64)
        if values.size and (values.min() < 0 or values.max() > MAX_16BIT):
            raise ValueError(f"{img.mode} pixels outside 0..{MAX_16BIT}: not a 16-bit image")
        grey = np.rint(values / (MAX_16BIT / 255)).astype(np.uint8)
        return Image.fromarray(grey, "L").convert("RGB")
    if img.mode == "F":
        raise ValueError("floating-point pixels: save the image with 8- or 16-bit integer pixels")
    return img.convert("RGB")
