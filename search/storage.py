"""Small files in the experiment's storage, a local path or a URI (s3://, gs://, file://), via pyarrow.fs."""
from __future__ import annotations

import uuid

from trainable.paths import check_output_folder


def _filesystem(root: str):
    import pyarrow.fs

    if "://" in root:
        return pyarrow.fs.FileSystem.from_uri(root)
    return pyarrow.fs.LocalFileSystem(), root


def write_bytes(root: str, relative: str, data: bytes) -> None:
    """Write ``root/relative`` atomically (temporary file, then move)."""
    fs, base = _filesystem(root)
    target = f"{base.rstrip('/')}/{relative}"
    fs.create_dir(target.rpartition("/")[0], recursive=True)
    tmp = f"{target}.{uuid.uuid4().hex}.tmp"
    with fs.open_output_stream(tmp) as f:
        f.write(data)
    fs.move(tmp, target)


def read_bytes(root: str, relative: str) -> bytes | None:
    """``root/relative``, or None when it does not exist (yet)."""
    fs, base = _filesystem(root)
    try:
        with fs.open_input_stream(f"{base.rstrip('/')}/{relative}") as f:
            return f.read()
    except (FileNotFoundError, OSError):
        return None


def check_local_root(storage: str, root: str) -> None:
    """Refuse, before Ray starts and without creating anything, a local ``--storage-path`` (or
    experiment folder ``root`` in it) that is a file, lies under a file, or cannot be written."""
    check_output_folder(storage, "--storage-path")
    check_output_folder(root, "--storage-path")
