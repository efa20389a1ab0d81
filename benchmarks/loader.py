"""Training-crop loading, before and after (crop before converting to float, JPEG decoded
straight to RGB), on image folders generated on the fly: 768×512 PNG (Kodak-sized), 2040×1356
PNG and JPEG (DIV2K-sized). Both paths alternate image by image in one run, so the ratio is
fair on a loaded machine; images/s is per loader process (a trial's workers multiply it).

    python -m benchmarks.loader [--repeats N]     # writes the "loader" section of results.json
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from trainable.data.folder import random_crop, read_rgb

RESULTS = Path(__file__).with_name("results.json")
FOLDERS = {"768x512_png": ((768, 512), "png"), "2040x1356_png": ((2040, 1356), "png"),
           "2040x1356_jpeg": ((2040, 1356), "jpg")}
PATCH = 256


def reference_crop(path: Path, p: int, generator: torch.Generator) -> torch.Tensor:
    """The loader before: decode and convert the whole image to float, then pad, crop, flip."""
    x = read_rgb(path)
    h, w = x.shape[-2:]
    if h < p or w < p:
        x = F.pad(x.unsqueeze(0), (0, max(0, p - w), 0, max(0, p - h)), mode="replicate").squeeze(0)
        h, w = x.shape[-2:]
    top = int(torch.randint(0, h - p + 1, (), generator=generator))
    left = int(torch.randint(0, w - p + 1, (), generator=generator))
    x = x[:, top:top + p, left:left + p]
    if torch.rand((), generator=generator) < 0.5:
        x = x.flip(-1)
    if torch.rand((), generator=generator) < 0.5:
        x = x.flip(-2)
    return x.contiguous()


def make_folder(root: Path, size: tuple[int, int], ext: str, count: int) -> list[Path]:
    """Photographs from scikit-image resized to ``size`` with a little sensor-like noise."""
    from skimage import data as skdata

    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    paths = []
    for i, name in enumerate(("astronaut", "coffee", "chelsea", "rocket")[:count]):
        img = Image.fromarray(np.asarray(getattr(skdata, name)())).convert("RGB").resize(size, Image.BICUBIC)
        noisy = np.clip(np.asarray(img, dtype=np.int16) + rng.integers(-3, 4, (size[1], size[0], 3)), 0, 255)
        path = root / f"{i}.{ext}"
        Image.fromarray(noisy.astype(np.uint8)).save(path, **({"quality": 92} if ext == "jpg" else {}))
        paths.append(path)
    return paths


def measure(repeats: int = 3) -> dict:
    torch.set_num_threads(1)
    out = {"patch": PATCH, "repeats": repeats}
    with tempfile.TemporaryDirectory() as tmp:
        for name, (size, ext) in FOLDERS.items():
            paths = make_folder(Path(tmp) / name, size, ext, 4)
            seconds = {"before": 0.0, "after": 0.0}
            identical = True
            for r in range(repeats):
                for i, path in enumerate(paths):
                    seed = r * 100 + i
                    start = time.perf_counter()
                    a = reference_crop(path, PATCH, torch.Generator().manual_seed(seed))
                    seconds["before"] += time.perf_counter() - start
                    start = time.perf_counter()
                    b = random_crop(path, PATCH, torch.Generator().manual_seed(seed))
                    seconds["after"] += time.perf_counter() - start
                    identical &= torch.equal(a, b) if ext == "png" else True
            n = repeats * len(paths)
            out[name] = {"images_per_s_before": n / seconds["before"], "images_per_s_after": n / seconds["after"],
                         "ms_per_image_before": 1e3 * seconds["before"] / n, "ms_per_image_after": 1e3 * seconds["after"] / n,
                         "ratio_after_over_before": seconds["before"] / seconds["after"]}
            if ext == "png":
                out[name]["crops_identical"] = bool(identical)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repeats", type=int, default=3)
    result = measure(p.parse_args().repeats)
    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    results["loader"] = result
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(f"{'folder':<18}{'before img/s':>14}{'after img/s':>14}{'ratio':>8}")
    for name in FOLDERS:
        r = result[name]
        print(f"{name:<18}{r['images_per_s_before']:>14.1f}{r['images_per_s_after']:>14.1f}"
              f"{r['ratio_after_over_before']:>8.2f}")


if __name__ == "__main__":
    main()
