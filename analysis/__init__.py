"""Analysis of HPCM spectral-regularizer searches: load, group across lambda, BD-rate, report."""

from .anchors import Anchor, list_anchors, load_anchor
from .bd import BDResult, bd_psnr, bd_psnr_checked, bd_rate, bd_rate_checked
from .errors import AnalysisError
from .experiment import load_experiment
from .rd import rd_points

__all__ = [
    "Anchor", "AnalysisError", "BDResult", "bd_psnr", "bd_psnr_checked", "bd_rate", "bd_rate_checked",
    "list_anchors", "load_anchor", "load_experiment", "rd_points",
]
