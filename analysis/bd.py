"""Bjontegaard deltas that say why when they cannot be computed.

Thin layer over the ``bjontegaard`` package. A BD value is only meaningful for two curves
of at least 4 points each, rising strictly in both rate and distortion, that overlap on the
axis integrated over (distortion for BD-rate, log rate for BD-PSNR). Otherwise the result
is NaN with a reason, never an exception and never a silent number. BD-rate is in percent
(negative = test saves bits), BD-PSNR in the distortion's unit (positive = test is better).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import bjontegaard
import numpy as np

from .errors import AnalysisError

METHODS = ("pchip", "cubic", "akima")
MIN_POINTS = 4


@dataclass(frozen=True)
class BDResult:
    """``value`` is NaN exactly when ``reason`` is set; ``overlap`` is the shared fraction
    of the integrated axis (low overlap means the delta rests on a narrow range)."""

    value: float
    reason: str | None
    overlap: float = float("nan")


def bd_rate_checked(rate_anchor: Sequence[float], dist_anchor: Sequence[float],
                    rate_test: Sequence[float], dist_test: Sequence[float],
                    method: str = "pchip") -> BDResult:
    """BD-rate (%) of test vs anchor, with the reason when undefined."""
    return _delta(bjontegaard.bd_rate, "distortion", rate_anchor, dist_anchor, rate_test, dist_test, method)


def bd_psnr_checked(rate_anchor: Sequence[float], dist_anchor: Sequence[float],
                    rate_test: Sequence[float], dist_test: Sequence[float],
                    method: str = "pchip") -> BDResult:
    """BD-PSNR (dB) of test vs anchor, with the reason when undefined."""
    return _delta(bjontegaard.bd_psnr, "rate", rate_anchor, dist_anchor, rate_test, dist_test, method)


def bd_rate(rate_anchor: Sequence[float], dist_anchor: Sequence[float],
            rate_test: Sequence[float], dist_test: Sequence[float], method: str = "pchip") -> float:
    """BD-rate in percent; NaN when undefined (use ``bd_rate_checked`` for the reason)."""
    return bd_rate_checked(rate_anchor, dist_anchor, rate_test, dist_test, method).value


def bd_psnr(rate_anchor: Sequence[float], dist_anchor: Sequence[float],
            rate_test: Sequence[float], dist_test: Sequence[float], method: str = "pchip") -> float:
    """BD-PSNR in dB; NaN when undefined (use ``bd_psnr_checked`` for the reason)."""
    return bd_psnr_checked(rate_anchor, dist_anchor, rate_test, dist_test, method).value


def _delta(function, axis: str, rate_anchor, dist_anchor, rate_test, dist_test, method: str) -> BDResult:
    if method not in METHODS:
        raise AnalysisError(f"BD method must be one of {', '.join(METHODS)}, not {method!r}")
    curves = {}
    for name, rate, dist in (("test", rate_test, dist_test), ("anchor", rate_anchor, dist_anchor)):
        rate, dist = np.asarray(rate, dtype=float).ravel(), np.asarray(dist, dtype=float).ravel()
        if rate.shape != dist.shape:
            raise AnalysisError(f"{name} curve has {rate.size} rates but {dist.size} distortions")
        reason = _curve_problem(name, rate, dist)
        if reason:
            return BDResult(float("nan"), reason)
        order = np.argsort(rate)
        curves[name] = (rate[order], dist[order])

    (rate_a, dist_a), (rate_t, dist_t) = curves["anchor"], curves["test"]
    span_a, span_t = (dist_a, dist_t) if axis == "distortion" else (np.log10(rate_a), np.log10(rate_t))
    overlap = _overlap(span_a, span_t)
    if overlap <= 0:
        return BDResult(float("nan"), f"no overlap of the {axis} ranges", 0.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        value = float(function(rate_a, dist_a, rate_t, dist_t, method=method,
                               require_matching_points=False, min_overlap=0))
    return BDResult(value, None, overlap)


def _curve_problem(name: str, rate: np.ndarray, dist: np.ndarray) -> str | None:
    if not (np.isfinite(rate).all() and np.isfinite(dist).all()):
        return f"NaN or infinite values in the {name} curve"
    if rate.size < MIN_POINTS:
        return f"fewer than {MIN_POINTS} RD points ({name} curve has {rate.size})"
    if (rate <= 0).any():
        return f"non-positive rate in the {name} curve"
    order = np.argsort(rate)
    if not ((np.diff(rate[order]) > 0).all() and (np.diff(dist[order]) > 0).all()):
        return f"non-monotone {name} curve (rate and distortion must rise strictly together)"
    return None


def _overlap(a: np.ndarray, b: np.ndarray) -> float:
    shared = min(a.max(), b.max()) - max(a.min(), b.min())
    return max(shared, 0.0) / (max(a.max(), b.max()) - min(a.min(), b.min()))
