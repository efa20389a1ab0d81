"""Report figures: a registry filled where each figure is defined.

A figure is one function ``(ReportData) -> matplotlib Figure`` decorated with
``@register_figure("file.png", "what it shows")``; ``analysis.report`` saves every registered
figure and lists it in report.md. Adding a figure is one decorated function (in
:mod:`analysis.plots` or any module imported before the report is written) and its test.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd
from matplotlib.figure import Figure

from .anchors import Anchor
from .verdict import Comparison
from .errors import AnalysisError
from .experiment import Experiment


@dataclass(frozen=True)
class ReportData:
    """What every figure may draw from."""

    experiment: Experiment
    points: pd.DataFrame        # test points (evaluation/points.csv), else validation points
    source: str                 # "test" or "validation"
    table: pd.DataFrame         # the BD table (analysis.verdict.bd_table, plus validation rank and anchor)
    reference: str              # the off configuration
    anchor: Anchor | None       # only when the evaluation set is the anchor's set
    method: str = "pchip"
    anchor_name: str | None = None       # the anchor asked for
    anchor_refusal: str | None = None    # why it was not compared, when it was not
    dropped: int = 0            # evaluated points of trials no longer eligible
    quality: str = "psnr"       # the distortion axis: "psnr", or "ms_ssim_db" for MS-SSIM-trained models

    @property
    def comparison(self) -> Comparison:
        """The table and points as :mod:`analysis.compare` renders them (the report's verdict part)."""
        return Comparison(self.points, self.table, self.reference, self.method, self.quality)


@dataclass(frozen=True)
class FigureSpec:
    filename: str
    caption: str
    draw: Callable[[ReportData], Figure]


_FIGURES: dict[str, FigureSpec] = {}


def register_figure(filename: str, caption: str) -> Callable:
    """Decorator: add ``draw`` to the report as ``filename`` with ``caption``."""
    def decorate(draw: Callable[[ReportData], Figure]) -> Callable[[ReportData], Figure]:
        if filename in _FIGURES and _FIGURES[filename].draw.__qualname__ != draw.__qualname__:
            raise AnalysisError(f"two report figures named {filename}")
        _FIGURES[filename] = FigureSpec(filename, caption, draw)
        return draw
    return decorate


def registered_figures() -> list[FigureSpec]:
    """Every registered figure, in registration order."""
    from . import plots, predictability_plot  # noqa: F401  (importing them registers the built-in figures)

    return list(_FIGURES.values())
