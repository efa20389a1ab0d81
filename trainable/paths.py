"""Output paths and devices a CLI is given, checked before any work: one line naming the flag.

A folder that is a file, lies under a file or cannot be written, or a file name that is a
folder, would otherwise fail as an OSError traceback after the training it was meant to keep.
"""
from __future__ import annotations

import os
from pathlib import Path

from .errors import InputError


def check_output_folder(path: str | os.PathLike, flag: str) -> None:
    """``path`` is, or can be created as, a folder this process can write; nothing is created."""
    path = Path(path).expanduser().absolute()
    if path.exists() and not path.is_dir():
        raise InputError(f"{flag} {path} is a file; give a folder")
    existing = path
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise InputError(f"{flag} {path} cannot be created: {existing} is a file")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise InputError(f"{flag} {path} is not writable ({existing}: permission denied); give a folder you can write to")


def check_output_file(path: str | os.PathLike, flag: str) -> None:
    """``path`` names a file (not a folder) whose folder is, or can be created, writable."""
    path = Path(path).expanduser().absolute()
    if path.is_dir():
        raise InputError(f"{flag} {path} is a folder; give a file name")
    check_output_folder(path.parent, flag)


def check_device(name: str, flag: str = "--device") -> None:
    """auto, cpu, or a CUDA device this machine can use; a user error (exit 2) otherwise."""
    if name == "auto":
        return
    import torch

    from .device import cuda_problem

    try:
        device = torch.device(name)
    except (RuntimeError, ValueError):
        raise InputError(f"{flag} {name!r} is not a device; give auto, cpu, cuda or cuda:N") from None
    if device.type == "cpu":
        return
    if device.type != "cuda":
        raise InputError(f"{flag} {name!r}: only auto, cpu, cuda and cuda:N are supported")
    problem = cuda_problem()
    if problem is not None:
        raise InputError(f"{flag} {name}: {problem}; give --device cpu (or auto)")
    if device.index is not None and device.index >= torch.cuda.device_count():
        raise InputError(f"{flag} {name}: this machine has {torch.cuda.device_count()} CUDA device(s); "
                         f"give cuda:0 .. cuda:{torch.cuda.device_count() - 1}")
