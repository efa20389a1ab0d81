"""HPCM models: ``create_model(name, **overrides)``."""
from .config import PRESETS, HPCMConfig, preset
from .hpcm import HPCM, crop_to, pad_to_multiple

MODEL_NAMES = tuple(PRESETS)


def create_model(name: str, channels_last: bool = True, **overrides) -> HPCM:
    """Build ``HPCM_Base``, ``HPCM_Large`` (official configurations) or ``HPCM_Tiny``.

    ``overrides`` replace fields of the preset's :class:`HPCMConfig`. Weights are kept
    channels-last by default: same outputs (within float rounding), ~1.25x faster
    convolutions on CPU (oneDNN) and tensor-core friendly on GPU.
    """
    import torch

    model = HPCM(preset(name, **overrides), name=name)
    return model.to(memory_format=torch.channels_last) if channels_last else model


__all__ = ["HPCM", "HPCMConfig", "MODEL_NAMES", "create_model", "pad_to_multiple", "crop_to"]
