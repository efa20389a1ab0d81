"""HPCM models: ``create_model(name, **overrides)``."""
from .config import PRESETS, HPCMConfig, preset
from .hpcm import HPCM, crop_to, pad_to_multiple

MODEL_NAMES = tuple(PRESETS)


def create_model(name: str, **overrides) -> HPCM:
    """Build ``HPCM_Base``, ``HPCM_Large`` (official configurations) or ``HPCM_Tiny``.

    ``overrides`` replace fields of the preset's :class:`HPCMConfig`.
    """
    return HPCM(preset(name, **overrides))


__all__ = ["HPCM", "HPCMConfig", "MODEL_NAMES", "create_model", "pad_to_multiple", "crop_to"]
