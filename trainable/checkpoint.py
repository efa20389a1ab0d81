"""Checkpoint files: atomic writes, safe loads, and the two formats we read.

A *training checkpoint* is our dict (``model``, ``optimizer``, ``epoch``, ...); an
*inference checkpoint* is a plain ``state_dict`` (as the official HPCM releases are,
possibly with DataParallel's ``module.`` prefix). Both load with
``weights_only=True``: nothing in a checkpoint can run code.
"""
from __future__ import annotations

import os
import tempfile
import warnings
from pathlib import Path
from typing import Any

import torch

from .errors import CheckpointError


def save_atomic(obj: Any, path: str | os.PathLike) -> None:
    """Write to a temporary file in the same directory, fsync, then rename over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_file(path: str | os.PathLike) -> Any:
    """``torch.load`` with ``weights_only=True`` on CPU; clear errors for missing/corrupt files."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        with warnings.catch_warnings():       # torch's unpickler warns about protocols on stderr
            warnings.simplefilter("ignore")
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for truncated zips / bad pickles
        raise CheckpointError(f"corrupt or unreadable checkpoint {path}: {_reason(exc)}") from None


def _reason(exc: Exception) -> str:
    """One whole sentence: torch's weights-only refusal is a paragraph of advice that does not apply here."""
    text = str(exc).strip()
    if "Weights only load failed" in text:
        return ("not a torch weights file, or one holding Python objects, which a weights-only load refuses "
                "(save a plain state_dict)")
    first = text.splitlines()[0] if text else type(exc).__name__
    return first.split(". ")[0].rstrip(".")[:200]


def model_state(obj: Any, path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The model ``state_dict`` inside a training checkpoint or a plain state_dict."""
    if isinstance(obj, dict) and isinstance(obj.get("model"), dict):
        obj = obj["model"]
    elif isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]
    if not (isinstance(obj, dict) and obj and all(isinstance(k, str) and torch.is_tensor(v) for k, v in obj.items())):
        raise CheckpointError(f"{path} holds no model state_dict")
    if all(k.startswith("module.") for k in obj):
        obj = {k[len("module."):]: v for k, v in obj.items()}
    return obj


def load_weights(model: torch.nn.Module, path: str | os.PathLike) -> dict:
    """Load model weights strictly from ``path``; returns the raw checkpoint object's metadata dict."""
    raw = load_file(path)
    state = model_state(raw, path)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        expected = set(model.state_dict())
        missing, unexpected = sorted(expected - set(state)), sorted(set(state) - expected)
        detail = f"{len(missing)} missing, {len(unexpected)} unexpected keys" if missing or unexpected else "shape mismatch"
        example = (missing or unexpected or [str(exc).strip().splitlines()[-1][:120]])[0]
        raise CheckpointError(f"checkpoint {path} does not fit model {getattr(model, 'name', type(model).__name__)}: "
                              f"{detail} (e.g. {example})") from None
    return raw if isinstance(raw, dict) and "model" in raw else {}
