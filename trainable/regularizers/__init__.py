"""Training-only spectral regularisers for HPCM (ICLR 2026, "Taming Hierarchical Image
Coding Optimization: A Spectral Regularization Perspective").

Phase 1 (``frequency``): DCT-domain truncation of the training images with a rising tau.
Phase 2 (``inter_scale``): a similarity term between adjacent scale latents, compared
through the Haar DWT and a 1x1 aligner.
"""
from .dct import dct2, dct_matrix, idct2
from .frequency import TauSchedule, radial_mask, truncate
from .haar import haar_dwt
from .inter_scale import InterScaleRegularizer, cosine_distance, l1_distance, l2_distance, rms_normalize

__all__ = [
    "InterScaleRegularizer",
    "TauSchedule",
    "cosine_distance",
    "dct2",
    "dct_matrix",
    "haar_dwt",
    "idct2",
    "l1_distance",
    "l2_distance",
    "radial_mask",
    "rms_normalize",
    "truncate",
]
