"""Load the official HPCM implementation (lyq133/LIC-HPCM) from a local checkout, for
parity checks and speed comparisons. The official code is never vendored: point
``HPCM_OFFICIAL_SRC`` (or ``--official``) at a checkout; without one, these
benchmarks are skipped with a message.

Two shims make the official code import on a machine without its Python 3.8 binaries:
its ``_CXX.pmf_to_quantized_cdf`` is the same function compressai ships, and its
custom rANS extension (only used by its compress/decompress, which we do not call)
is replaced by a module whose classes refuse to be used.
"""
from __future__ import annotations

import contextlib
import importlib
import os
import sys
import types
from pathlib import Path

import torch


def official_root(path: str | None = None) -> Path | None:
    root = path or os.environ.get("HPCM_OFFICIAL_SRC")
    if root and (Path(root) / "src" / "models" / "HPCM_Base.py").is_file():
        return Path(root)
    return None


class _Unavailable:
    def __init__(self, *args, **kwargs):
        raise NotImplementedError("the official rANS extension is not built for this Python")


@contextlib.contextmanager
def _cpu_safe_ones():
    """The official constructor allocates adaptive parameters with device='cuda'."""
    if torch.cuda.is_available():
        yield
        return
    original = torch.ones

    def ones(*args, **kwargs):
        if kwargs.get("device") == "cuda":
            kwargs["device"] = "cpu"
        return original(*args, **kwargs)

    torch.ones = ones
    try:
        yield
    finally:
        torch.ones = original


def load_official(name: str, root: Path) -> torch.nn.Module:
    """Instantiate the official ``HPCM`` class of ``src/models/{name}.py``."""
    from compressai import _CXX

    sys.modules.setdefault("src.entropy_models._CXX", _CXX)
    ans = types.ModuleType("src.entropy_models.unbounded_ans")
    ans.ubransEncoder = ans.ubransDecoder = _Unavailable
    sys.modules.setdefault("src.entropy_models.unbounded_ans", ans)
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    module = importlib.import_module(f"src.models.{name}")
    with _cpu_safe_ones():
        return module.HPCM()
