"""Training-only spectral regularisers (ICLR 2026, "Taming Hierarchical Image Coding
Optimization: A Spectral Regularization Perspective").

Phase 1 (``frequency``): DCT-domain truncation of the training images with a rising tau.
Phase 2 (``inter_scale``): a similarity term between adjacent scale latents, compared
through the Haar DWT and an aligner. ``predictability``: the held-out inter-scale R^2 that
shows what Phase 2 changed (``scale_predictability``). Masks, distances and aligners are registries: a new one is one
decorated function or class.
"""
from .dct import dct2, dct_matrix, idct2
from .frequency import MASKS, FrequencyTruncation, TauSchedule, radial_mask, register_mask, truncate
from .haar import haar_dwt
from . import crossfit  # noqa: F401  (registers the default aligner)
from .inter_scale import (ALIGNERS, DISTANCES, SIGNS, InterScaleRegularizer, cosine_distance, dwt_features,
                          l1_distance, l2_distance, register_aligner, register_distance, rms_normalize)
from .predictability import Predictability, cross_image_cka, inter_scale_r2, pair_rows, predictability_report, scale_predictability

__all__ = [
    "ALIGNERS", "DISTANCES", "MASKS", "SIGNS", "FrequencyTruncation", "InterScaleRegularizer", "TauSchedule",
    "Predictability", "cosine_distance", "cross_image_cka", "dct2", "dct_matrix", "dwt_features", "haar_dwt", "idct2",
    "inter_scale_r2", "predictability_report", "scale_predictability",
    "l1_distance", "l2_distance", "pair_rows", "radial_mask", "register_aligner", "register_distance",
    "register_mask", "rms_normalize", "truncate",
]
