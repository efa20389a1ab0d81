"""BD-rate and BD-PSNR of every configuration against its baseline and a published anchor.

A group's baseline is the regularizers-off group with the same values for every
hyperparameter outside :data:`analysis.groups.REGULARIZER_KEYS` (same model, lr, seed, ...),
so the delta measures the regularizers and nothing else. A group without such a baseline
gets NaN with that reason instead of a comparison against a differently trained model.
"""

from __future__ import annotations

from dataclasses import replace

import pandas as pd

from . import groups
from .anchors import Anchor
from .bd import BDResult, bd_psnr_checked, bd_rate_checked

QUALITY_OF_ANCHOR = {"val_psnr": ("bpp", "psnr"), "val_ms_ssim_db": ("msssim_bpp", "ms_ssim_db")}
TABLE_COLUMNS = (
    "group", "label", "is_baseline", "n_lambdas", "lambdas", "baseline_group",
    "bd_rate_vs_baseline", "bd_rate_vs_baseline_reason", "bd_psnr_vs_baseline", "bd_psnr_vs_baseline_reason",
    "anchor", "bd_rate_vs_anchor", "bd_rate_vs_anchor_reason", "bd_psnr_vs_anchor", "bd_psnr_vs_anchor_reason",
    "overlap_vs_baseline", "overlap_vs_anchor",
)


def bd_table(points: pd.DataFrame, anchor: Anchor | None = None, method: str = "pchip") -> pd.DataFrame:
    """One row per group of ``rd_points`` output; BD-PSNR is in the quality metric's dB.

    ``overlap_*`` is the shared fraction of the distortion range behind each BD-rate.
    Hyperparameter columns follow the fixed ones.
    """
    hparams = points.attrs.get("hparams", [])
    anchor_curve = _anchor_curve(anchor, points.attrs.get("quality", "val_psnr"))
    curves = {group: rows for group, rows in points.groupby("group", sort=True)}
    rows = []
    for group, curve in curves.items():
        first = curve.iloc[0]
        baseline = _matching_baseline(first, curves, hparams)
        row = {
            "group": group, "label": first["label"], "is_baseline": bool(first["is_baseline"]),
            "n_lambdas": len(curve), "lambdas": " ".join(f"{value:g}" for value in curve["lmbda"]),
            "baseline_group": baseline, "anchor": anchor.name if anchor else None,
        }
        if baseline is None:
            missing = BDResult(float("nan"), "no baseline group (regularizers off) with the same other settings")
            row.update(_columns("baseline", missing, missing))
        else:
            reference = curves[baseline]
            row.update(_compare("baseline", "baseline", (reference["bpp"], reference["quality"]), curve, method))
        if isinstance(anchor_curve, str):
            missing = BDResult(float("nan"), anchor_curve)
            row.update(_columns("anchor", missing, missing))
        else:
            row.update(_compare("anchor", anchor.name, anchor_curve, curve, method))
        row.update({column: first[column] for column in hparams})
        rows.append(row)
    table = pd.DataFrame(rows, columns=[*TABLE_COLUMNS, *hparams])
    return table.astype({"is_baseline": bool, "baseline_group": "Int64"})


def _anchor_curve(anchor: Anchor | None, quality: str):
    """The anchor's (rate, quality) arrays, or the reason there are none."""
    if anchor is None:
        return "no anchor chosen"
    if quality not in QUALITY_OF_ANCHOR:
        return f"anchors carry no figures for {quality}"
    rate, value = (getattr(anchor, name) for name in QUALITY_OF_ANCHOR[quality])
    if rate is None or value is None:
        return f"anchor {anchor.name} has no MS-SSIM figures"
    return rate, value


def _matching_baseline(first: pd.Series, curves: dict[int, pd.DataFrame], hparams: list[str]) -> int | None:
    shared = [column for column in hparams if column not in groups.REGULARIZER_KEYS]
    for group, curve in curves.items():
        candidate = curve.iloc[0]
        if candidate["is_baseline"] and all(
            groups.canonical(candidate[column]) == groups.canonical(first[column]) for column in shared
        ):
            return group
    return None


def _compare(name: str, reference_name: str, reference, curve: pd.DataFrame, method: str) -> dict:
    rate, quality = reference
    args = (rate, quality, curve["bpp"], curve["quality"])
    results = [_rename(check(*args, method=method), reference_name) for check in (bd_rate_checked, bd_psnr_checked)]
    return _columns(name, *results)


def _rename(result: BDResult, reference_name: str) -> BDResult:
    """Say which reference a reason is about ("anchor" alone is ambiguous in a report)."""
    if result.reason is None:
        return result
    reason = result.reason.replace("anchor curve", f"{reference_name} curve").replace("test curve", "configuration")
    return replace(result, reason=reason)


def _columns(name: str, rate: BDResult, psnr: BDResult) -> dict:
    return {
        f"bd_rate_vs_{name}": rate.value, f"bd_rate_vs_{name}_reason": rate.reason,
        f"bd_psnr_vs_{name}": psnr.value, f"bd_psnr_vs_{name}_reason": psnr.reason,
        f"overlap_vs_{name}": rate.overlap,
    }
