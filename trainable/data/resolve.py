"""Turn an optional dataset argument into a folder; the built-in sample set is the default."""
from __future__ import annotations

from pathlib import Path

from .errors import DataError
from .sample import sample_dataset_dir


def resolve_dataset(path_or_name: str | Path | None, split: str) -> Path:
    """None, "" or "sample" → the built-in ``split`` folder; otherwise an existing directory."""
    if path_or_name in (None, "", "sample"):
        return sample_dataset_dir(split)
    path = Path(path_or_name).expanduser()
    if not path.is_dir():
        raise DataError(f"dataset directory not found: {path}")
    return path
