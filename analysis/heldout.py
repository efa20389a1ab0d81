"""Proof that an evaluation set is held out: no image in common with the experiment's training or
validation set, by content.

Content is the pixel digest the dataset manifest records on its one decode of every image
(:func:`trainable.data.manifest.pixel_digest`: SHA-256 of the size and the decoded RGB pixels,
what a model sees). A copy under another name, in another folder or in another lossless format
(PNG → BMP/TIFF/WebP-lossless) counts as shared; a lossy re-encode, crop, resize or flip is other
pixels and is not caught. Comparing pixels rather than file bytes catches strictly more (equal
bytes decode to equal pixels). With warm manifests (the search verified its training and
validation folders before Ray started) the check decodes nothing.

Which folders the experiment used: ``datasets`` in experiment.json (``search.run`` records the
resolved train / val / test folders); experiments recorded before that fall back to the search
settings ``train_dataset`` and ``val_dataset`` (``test_dataset`` in older ones, which named the
validation folder), None meaning the built-in split.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from .errors import AnalysisError

METHOD = "sha256 of each image's size and decoded RGB pixels (trainable.data.manifest.pixel_digest)"
USED_SPLITS = ("train", "val")
_NAMES = {"train": "training", "val": "validation"}


def recorded_test_dataset(info: dict[str, Any]) -> str | None:
    """The test folder experiment.json records (None: not recorded, use the built-in test split)."""
    folder = (info.get("datasets") or {}).get("test")
    if folder and not Path(folder).is_dir():
        raise AnalysisError(f"the test folder {folder} (experiment.json) is not on this machine; pass --dataset DIR")
    return folder


def used_datasets(info: dict[str, Any], experiment: Path,
                  overrides: dict[str, str | os.PathLike[str] | None] | None = None) -> dict[str, Path]:
    """split → folder the experiment trained (``train``) and chose configurations (``val``) on.

    ``overrides`` (split → folder) replace recorded folders that are elsewhere on this machine.
    """
    from trainable.data import resolve_dataset

    overrides = overrides or {}
    if not info and not all(overrides.get(split) for split in USED_SPLITS):
        raise AnalysisError(f"{experiment} has no experiment.json, so which images trained the models is unknown; "
                            f"pass --train-dataset and --val-dataset")
    recorded = info.get("datasets") or {}
    settings = {"train": info.get("train_dataset"), "val": info.get("val_dataset", info.get("test_dataset"))}
    folders = {}
    for split in USED_SPLITS:
        if overrides.get(split):
            folders[split] = resolve_dataset(overrides[split], split)
        elif recorded.get(split):
            folders[split] = Path(recorded[split])
            if not folders[split].is_dir():
                raise AnalysisError(f"cannot check that the test set is held out: the {_NAMES[split]} folder "
                                    f"{folders[split]} (experiment.json) is not on this machine; pass "
                                    f"--{split}-dataset DIR pointing at a copy")
        else:
            folders[split] = resolve_dataset(settings[split], split)
    return folders


def check_held_out(test, used: dict[str, Path]) -> dict[str, Any]:
    """Raise :class:`AnalysisError` if the ``test`` manifest shares an image with a ``used`` folder
    (split → folder, :func:`used_datasets`); else the record of what was compared (evaluation.json)."""
    from trainable.data import dataset_manifest

    test_names = {}
    for path, digest in zip(test.files, test.digests):
        test_names.setdefault(digest, path)
    compared = []
    for split, folder in used.items():
        manifest = dataset_manifest(folder)
        shared = [(test_names[digest], path) for path, digest in zip(manifest.files, manifest.digests)
                  if digest in test_names]
        if shared:
            (mine, theirs), more = shared[0], len({t for t, _ in shared}) - 1
            also = f" (and {more} more test image(s))" if more else ""
            raise AnalysisError(f"the test set is not held out: {mine} has the same pixels as {theirs} of the "
                                f"{_NAMES[split]} set{also}; evaluate on images the search never saw")
        compared.append({"split": split, "folder": str(manifest.root), "images": len(manifest.files),
                         "distinct": len(set(manifest.digests))})
    return {"checked": True, "method": METHOD, "shared": 0,
            "test": {"folder": str(test.root), "images": len(test.files), "distinct": len(test_names)},
            "compared": compared}

