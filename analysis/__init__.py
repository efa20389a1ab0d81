"""Analysis of HPCM spectral-regularizer searches: load, evaluate on a held-out set, BD-rate vs off with
an interval, report.

The names below load on first access, so ``python -m analysis.<tool> --help`` does not import
scipy, bjontegaard and matplotlib first.
"""
from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "Anchor": ".anchors", "list_anchors": ".anchors", "load_anchor": ".anchors",
    "BDResult": ".bd", "bd_psnr": ".bd", "bd_psnr_checked": ".bd", "bd_rate": ".bd", "bd_rate_checked": ".bd",
    "AnalysisError": ".errors", "Experiment": ".experiment", "load_experiment": ".experiment",
    "register_figure": ".figures", "BDInterval": ".interval", "bd_interval": ".interval", "bd_table": ".verdict",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = sorted(_LAZY)
