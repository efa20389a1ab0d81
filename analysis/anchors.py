"""Published rate-distortion curves to compare an experiment against.

The bundled file ``anchors/published.json`` holds figures only, each series with the source
it was taken from. Schema (a user file follows the same one): ``{"about": str,
"<dataset>": {"<series>": {"bpp": [...], "psnr": [...], "source": str, optional
"ms_ssim" (linear, at "bpp") or "msssim_bpp" + "ms_ssim_db"}}}``, plus an optional
``published_bd_rate_vs_vtm22`` section of BD-rates reported in the papers, and an
``evaluation_sets`` section describing each dataset (image count, sizes) so that an anchor is
compared only with an evaluation on that set (:func:`refusal`).

An anchor is named ``dataset:series`` (``kodak:VTM``), or ``FILE.json:dataset:series``.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .errors import AnalysisError

PUBLISHED_PATH = Path(__file__).with_name("anchors") / "published.json"
CLAIMS_KEY = "published_bd_rate_vs_vtm22"
SETS_KEY = "evaluation_sets"


@dataclass(frozen=True)
class Anchor:
    """One published curve; the MS-SSIM arrays are None when the source has none."""

    name: str
    bpp: np.ndarray
    psnr: np.ndarray
    source: str
    msssim_bpp: np.ndarray | None = None
    ms_ssim_db: np.ndarray | None = None


@dataclass(frozen=True)
class PublishedClaims:
    """BD-rates as the papers report them (percent vs VTM-22.0), for context only."""

    about: str
    table: pd.DataFrame
    notes: list[str] = field(default_factory=list)


def list_anchors(path: str | os.PathLike[str] | None = None) -> list[str]:
    """Every ``dataset:series`` name in the bundled file (or in ``path``)."""
    return [f"{dataset}:{series}" for dataset, series in _series_names(_read(path))]


def load_anchor(name: str, path: str | os.PathLike[str] | None = None) -> Anchor:
    """Load ``dataset:series`` from the bundled file, ``path``, or a ``FILE.json:`` prefix."""
    parts = name.rsplit(":", 2)
    if len(parts) == 3:
        path, parts = parts[0], parts[1:]
    if len(parts) != 2:
        raise AnalysisError(f"anchor must be named dataset:series or FILE.json:dataset:series, not {name!r}")
    dataset, series = parts
    data = _read(path)
    if (dataset, series) not in _series_names(data):
        available = ", ".join(f"{d}:{s}" for d, s in _series_names(data))
        raise AnalysisError(f"unknown anchor {name!r}; available: {available}")
    return _anchor(f"{dataset}:{series}", data[dataset][series])


def about(path: str | os.PathLike[str] | None = None) -> str:
    """The file's own description of where its figures come from."""
    return str(_read(path).get("about", ""))


def published_claims(path: str | os.PathLike[str] | None = None) -> PublishedClaims | None:
    """The papers' reported BD-rates, or None when the file carries none."""
    section = _read(path).get(CLAIMS_KEY)
    if not isinstance(section, dict):
        return None
    columns = section.get("columns", [])
    rows = {key: value for key, value in section.items()
            if isinstance(value, list) and key != "columns" and len(value) == len(columns)}
    table = pd.DataFrame.from_dict(rows, orient="index", columns=columns)
    extras = {key: value for key, value in section.items()
              if key not in rows and key not in ("about", "columns")}
    notes = [f"{key}: {value}" for key, value in _flatten(extras)]
    return PublishedClaims(str(section.get("about", "")), table, notes)


def refusal(name: str, images: list[tuple[int, int]] | None,
            path: str | os.PathLike[str] | None = None) -> str | None:
    """Why anchor ``name`` cannot be compared with an evaluation on ``images`` ((width, height)
    per image; None = no test evaluation), or None when the set matches its description."""
    if images is None:
        return f"anchor {name} not compared: no test-set evaluation (validation points are not {name.split(':')[-2]})"
    parts = name.rsplit(":", 2)
    if len(parts) == 3:
        path, parts = parts[0], parts[1:]
    dataset = parts[0]
    rule = _read(path).get(SETS_KEY, {}).get(dataset)
    if not isinstance(rule, dict):
        return f"anchor {name} not compared: the anchor file does not describe the {dataset} set, so the evaluation set cannot be checked"
    expected = rule.get("note") or dataset
    count = rule.get("images")
    if isinstance(count, int) and len(images) != count:
        return f"anchor {name} not compared: the evaluation set has {len(images)} images, {dataset} has {count} ({expected})"
    sizes = {tuple(sorted(size)) for size in rule.get("sizes", [])}
    odd = [size for size in images if sizes and tuple(sorted(size)) not in sizes]
    low, high = rule.get("long_side", (0, float("inf")))
    odd += [size for size in images if not low <= max(size) <= high]
    if odd:
        return (f"anchor {name} not compared: an evaluation image is {odd[0][0]}x{odd[0][1]}, not a {dataset} size "
                f"({expected})")
    return None


def _read(path: str | os.PathLike[str] | None) -> dict[str, Any]:
    file = Path(path) if path is not None else PUBLISHED_PATH
    try:
        data = json.loads(file.read_text())
    except FileNotFoundError:
        raise AnalysisError(f"anchor file not found: {file}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise AnalysisError(f"unreadable anchor file {file}: {exc}") from None
    if not isinstance(data, dict):
        raise AnalysisError(f"anchor file {file} must hold a JSON object")
    return data


def _series_names(data: dict[str, Any]) -> list[tuple[str, str]]:
    return [
        (dataset, series)
        for dataset, entries in data.items() if dataset not in (CLAIMS_KEY, SETS_KEY) and isinstance(entries, dict)
        for series, curve in entries.items() if isinstance(curve, dict) and {"bpp", "psnr"} <= set(curve)
    ]


def _anchor(name: str, curve: dict[str, Any]) -> Anchor:
    bpp, psnr = _array(name, curve, "bpp"), _array(name, curve, "psnr")
    if bpp.shape != psnr.shape:
        raise AnalysisError(f"anchor {name} has {bpp.size} bpp values but {psnr.size} PSNR values")
    msssim_bpp = ms_ssim_db = None
    if "ms_ssim_db" in curve:
        msssim_bpp = _array(name, curve, "msssim_bpp" if "msssim_bpp" in curve else "bpp")
        ms_ssim_db = _array(name, curve, "ms_ssim_db")
    elif "ms_ssim" in curve:
        msssim_bpp, ms_ssim_db = bpp, -10 * np.log10(1 - _array(name, curve, "ms_ssim"))
    if msssim_bpp is not None and msssim_bpp.shape != ms_ssim_db.shape:
        raise AnalysisError(f"anchor {name} has mismatched MS-SSIM arrays")
    return Anchor(name, bpp, psnr, str(curve.get("source", "source not stated")), msssim_bpp, ms_ssim_db)


def _array(name: str, curve: dict[str, Any], key: str) -> np.ndarray:
    try:
        return np.asarray(curve[key], dtype=float)
    except (TypeError, ValueError):
        raise AnalysisError(f"anchor {name}: '{key}' must be a list of numbers") from None


def _flatten(mapping: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    items = []
    for key, value in mapping.items():
        if isinstance(value, dict):
            items.extend(_flatten(value, f"{prefix}{key}."))
        else:
            items.append((f"{prefix}{key}", value))
    return items
