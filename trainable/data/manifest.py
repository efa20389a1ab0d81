"""Dataset manifest: every image of a folder decoded once, then trusted while unchanged.

``verify_dataset(folder)`` lists the images (recursive, sorted, extension case-insensitive),
decodes in a thread pool only those whose (size, mtime) differ from the cached manifest,
and returns the list. A corrupt file raises one-line :class:`DataError` naming it; good
files checked on the way are still cached, so the rerun after a fix decodes only the
fixed file. Each image's content digest (SHA-256 of its size and decoded RGB pixels, what a model
sees) is recorded on the same decode, so ``analysis.heldout`` can compare datasets by content
without decoding again. The manifest is a JSON file per folder in ``<cache>/manifests/`` (``<cache>`` =
``$HPCM_TUNE_CACHE``, else ``~/.cache/hpcm-tune``), named by a hash of the folder's absolute
path and written atomically, so concurrent trials can share it. It also records each
image's width and height, which callers read without decoding (:func:`dataset_manifest`).

Trust model: a file whose size and modification time (ns) are unchanged is not decoded
again. A cache on a node-local disk is per node: the first trial on each node of a
cluster verifies, the others reuse (point ``HPCM_TUNE_CACHE`` at shared storage to verify
once per cluster).
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
import threading
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from .decode import to_rgb8
from .errors import DataError

EXTENSIONS = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"}
VERSION = 3   # 2: entries carry the pixel digest; 3: 16-bit greyscale digested as scaled, not clipped
# A training folder (check_training_set): at least this many images (one image is one picture's
# crops in every batch), none so small that more than this share of a crop would be edge padding.
MIN_TRAIN_IMAGES = 2
MAX_PADDING = 0.25
_DECODE_ERRORS = (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError)

_decoded = 0
_decoded_lock = threading.Lock()


@dataclass(frozen=True)
class Manifest:
    """The verified images of ``root`` (sorted), their (width, height) and pixel digests."""

    root: Path
    files: list[Path]
    sizes: list[tuple[int, int]]
    digests: list[str]   # pixel_digest of each file: equal for a copy under another name or lossless format
    decoded: int   # how many files this verification had to decode (0 when the cache was fresh)


def decode_count() -> int:
    """Files decoded by verification in this process so far (for tests and benchmarks)."""
    return _decoded


def list_images(root: str | os.PathLike) -> dict[Path, os.stat_result]:
    """Every image file under ``root`` (recursive), sorted, with its ``stat``."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"dataset directory not found: {root}")
    found: dict[Path, os.stat_result] = {}
    stack = [root]
    while stack:
        with os.scandir(stack.pop()) as entries:
            for entry in entries:
                if entry.is_dir() and not entry.is_symlink():   # like rglob: symlinked folders not followed
                    stack.append(Path(entry.path))
                elif entry.is_file() and os.path.splitext(entry.name)[1].lower() in EXTENSIONS:
                    found[Path(entry.path)] = entry.stat()
    if not found:
        raise DataError(f"no images found in {root}")
    return dict(sorted(found.items()))


def verify_dataset(folder: str | os.PathLike, workers: int | None = None) -> list[Path]:
    """Sorted image paths of ``folder``, each known to decode (see the module docstring)."""
    return dataset_manifest(folder, workers).files


def dataset_manifest(folder: str | os.PathLike, workers: int | None = None) -> Manifest:
    """Verify ``folder`` through its cached manifest and return it."""
    root = Path(folder).absolute()
    listing = list_images(root)
    cache_file = manifest_path(root)
    cached = _read(cache_file, root)
    entries: dict[str, list[int]] = {}
    stale: list[Path] = []
    for path, stat in listing.items():
        key = path.relative_to(root).as_posix()
        entry = cached.get(key)
        if entry is not None and entry[:2] == [stat.st_size, stat.st_mtime_ns]:
            entries[key] = entry
        else:
            stale.append(path)
    problems: list[str] = []
    if stale:
        with ThreadPoolExecutor(max_workers=workers or min(32, 2 * (os.cpu_count() or 1))) as pool:
            for path, result in zip(stale, pool.map(_inspect, stale)):
                if isinstance(result, str):
                    problems.append(f"{path} ({result})")
                else:
                    stat = listing[path]
                    entries[path.relative_to(root).as_posix()] = [stat.st_size, stat.st_mtime_ns, *result]
        if entries != cached:
            _write(cache_file, root, entries)
    if problems:
        more = f"; {len(problems) - 1} more corrupt image(s) in {root}" if len(problems) > 1 else ""
        raise DataError(f"corrupt image: {problems[0]}{more}")
    files = list(listing)
    rows = [entries[p.relative_to(root).as_posix()] for p in files]
    return Manifest(root, files, [tuple(row[2:4]) for row in rows], [row[4] for row in rows], len(stale))


def check_training_set(folder: str | os.PathLike, patch_size: int) -> Manifest:
    """Verify ``folder`` and refuse it as a training set with fewer than MIN_TRAIN_IMAGES images,
    or with an image whose ``patch_size`` crops would be more than MAX_PADDING edge padding."""
    manifest = dataset_manifest(folder)
    if len(manifest.files) < MIN_TRAIN_IMAGES:
        raise DataError(f"training set {manifest.root} has {len(manifest.files)} image(s); training needs at "
                        f"least {MIN_TRAIN_IMAGES} (give --train-dataset a folder with more)")
    small = [(path, w, h) for path, (w, h) in zip(manifest.files, manifest.sizes)
             if 1 - min(w, patch_size) * min(h, patch_size) / patch_size ** 2 > MAX_PADDING]
    if small:
        path, w, h = small[0]
        more = f" ({len(small) - 1} more like it)" if len(small) > 1 else ""
        padding = 1 - min(w, patch_size) * min(h, patch_size) / patch_size ** 2
        raise DataError(f"training image {path} is {w}x{h}{more}: its {patch_size}x{patch_size} crops would be "
                        f"{padding:.0%} padding (at most {MAX_PADDING:.0%}); remove it or lower --patch-size")
    return manifest


def manifest_path(root: Path) -> Path:
    """Where the manifest of ``root`` (an absolute path) is cached."""
    cache = Path(os.environ.get("HPCM_TUNE_CACHE", Path.home() / ".cache" / "hpcm-tune"))
    digest = hashlib.sha256(str(root).encode()).hexdigest()[:20]
    return cache / "manifests" / f"{digest}.json"


def pixel_digest(img: Image.Image) -> str:
    """SHA-256 of the image's size and RGB pixels (the model's input), whatever the file's name or format."""
    rgb = to_rgb8(img)
    return hashlib.sha256(b"%dx%d:" % rgb.size + rgb.tobytes()).hexdigest()


def _inspect(path: Path) -> tuple[int, int, str] | str:
    """Decode ``path`` fully; its (width, height, pixel digest), or the reason it cannot be read."""
    global _decoded
    with _decoded_lock:
        _decoded += 1
    try:
        with Image.open(path) as img:
            img.load()
            return (*img.size, pixel_digest(img))
    except _DECODE_ERRORS as exc:
        return str(exc).splitlines()[0] if str(exc).strip() else type(exc).__name__


def _read(cache_file: Path, root: Path) -> dict[str, list[int]]:
    try:
        data = json.loads(cache_file.read_text())
    except (OSError, ValueError):
        return {}   # no manifest yet, or a damaged one: verify again
    if not isinstance(data, dict) or data.get("version") != VERSION or data.get("root") != str(root):
        return {}
    files = data.get("files")
    return files if isinstance(files, dict) else {}


def _write(cache_file: Path, root: Path, entries: dict[str, list[int]]) -> None:
    """Atomic replace; an unwritable cache costs speed (verification repeats), not correctness."""
    tmp = None
    try:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{cache_file.name}.", dir=cache_file.parent)
        with os.fdopen(fd, "w") as handle:
            json.dump({"version": VERSION, "root": str(root), "files": entries}, handle)
        os.replace(tmp, cache_file)
    except OSError as exc:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        warnings.warn(f"dataset manifest not cached ({exc}); set HPCM_TUNE_CACHE to a writable folder",
                      stacklevel=3)
