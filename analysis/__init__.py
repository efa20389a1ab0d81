"""Analysis of HPCM spectral-regularizer searches: load, evaluate on a held-out set, BD-rate vs off with
an interval, report."""

from .anchors import Anchor, list_anchors, load_anchor
from .bd import BDResult, bd_psnr, bd_psnr_checked, bd_rate, bd_rate_checked
from .errors import AnalysisError
from .experiment import Experiment, load_experiment
from .figures import register_figure
from .interval import BDInterval, bd_interval
from .verdict import bd_table

__all__ = [
    "Anchor", "AnalysisError", "BDInterval", "BDResult", "Experiment", "bd_interval", "bd_psnr", "bd_psnr_checked",
    "bd_rate", "bd_rate_checked", "bd_table", "list_anchors", "load_anchor", "load_experiment", "register_figure",
]
