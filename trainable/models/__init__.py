"""Compression models behind one registry and one small interface.

- ``register_model(name)`` / ``create_model(name, **overrides)`` / ``model_names()``
  (:mod:`.registry`): names are read from the model modules' source, so importing this
  package, listing names and validating a config never import torch.
- :class:`CompressionModel` (:mod:`.interface`): what the trainer, the regularizers and
  the codec rely on (``num_scales``, ``scale_channels``, ``coding_multiple``, scale
  latents, ``update``/``compress``/``decompress``, ``name``).
- Families: HPCM (:mod:`.hpcm`: ``HPCM_Base``, ``HPCM_Large``, ``HPCM_Tiny``) and the
  DHIC-style hierarchical codec (:mod:`.dhic`: ``DHIC_Base``, ``DHIC_Tiny``).

``HPCM``, ``DHIC``, ``pad_to_multiple``, ``crop_to`` and ``MODEL_NAMES`` (kept for older
callers; use ``model_names()``) are loaded on first access.
"""
from __future__ import annotations

import importlib
from typing import Any

from .config import HPCMConfig
from .interface import CompressionModel, check_model
from .registry import create_model, declared_models, model_names, register_model

_LAZY = {"HPCM": ".hpcm", "DHIC": ".dhic", "DHICConfig": ".dhic", "pad_to_multiple": ".ops", "crop_to": ".ops"}


def __getattr__(name: str) -> Any:
    if name == "MODEL_NAMES":
        return model_names()
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["CompressionModel", "DHIC", "DHICConfig", "HPCM", "HPCMConfig", "MODEL_NAMES", "check_model",
           "create_model", "crop_to", "declared_models", "model_names", "pad_to_multiple", "register_model"]
