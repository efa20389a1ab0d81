"""Write a BD-rate report for one experiment directory.

    python -m analysis.report EXPERIMENT_DIR [--anchor kodak:VTM] [--out DIR] [--select final|best]

Writes bd_rate.csv, rd_curves.png, hparam_effects.png, learning_curves.png and report.md
to OUT (default EXPERIMENT_DIR/report). Bad input: one line on stderr, exit status 2.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from . import anchors, plots, summary
from .bd import METHODS
from .comparison import bd_table
from .errors import AnalysisError
from .experiment import load_experiment
from .rd import SELECTIONS, rd_points

DEFAULT_ANCHOR = "kodak:VTM"
FIGURES = ("rd_curves.png", "hparam_effects.png", "learning_curves.png")


def write_report(experiment_dir: str | os.PathLike[str], out: str | os.PathLike[str] | None = None,
                 anchor: str | None = DEFAULT_ANCHOR, select: str = "final", method: str = "pchip",
                 rate: str = "val_bpp") -> Path:
    """Build every report file and return the folder they are in."""
    experiment = load_experiment(experiment_dir)
    reference = anchors.load_anchor(anchor) if anchor else None
    points = rd_points(experiment, select=select, rate=rate)
    table = bd_table(points, reference, method)

    folder = Path(out) if out is not None else Path(experiment_dir) / "report"
    folder.mkdir(parents=True, exist_ok=True)
    table.to_csv(folder / "bd_rate.csv", index=False)
    figures = (
        plots.rd_figure(points, table, reference),
        plots.effects_figure(table, points),
        plots.learning_figure(experiment),
    )
    for name, figure in zip(FIGURES, figures):
        figure.savefig(folder / name, dpi=110)  # a pyplot-free Figure saves through Agg
    text = summary.render(experiment, points, table, reference, anchors.published_claims(),
                          anchors.about(), method, FIGURES)
    (folder / "report.md").write_text(text)
    return folder


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point; returns the exit status."""
    try:
        args = _parser().parse_args(argv)
        folder = write_report(args.experiment, args.out, None if args.anchor == "none" else args.anchor,
                              args.select, args.method, args.rate)
    except (AnalysisError, OSError) as exc:
        print(f"analysis.report: error: {exc}".splitlines()[0], file=sys.stderr)
        return 2
    print(folder / "report.md")
    return 0


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:
        raise AnalysisError(message)


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m analysis.report", description=__doc__.splitlines()[0])
    parser.add_argument("experiment", help="Ray Tune experiment directory (STORAGE/NAME)")
    parser.add_argument("--anchor", default=DEFAULT_ANCHOR,
                        help="published curve, dataset:series or FILE.json:dataset:series; 'none' to skip "
                             f"(default {DEFAULT_ANCHOR}; see analysis.list_anchors())")
    parser.add_argument("--out", help="output folder (default EXPERIMENT/report)")
    parser.add_argument("--select", choices=SELECTIONS, default="final",
                        help="RD point per trial: last validated epoch or lowest val_loss (default final)")
    parser.add_argument("--method", choices=METHODS, default="pchip",
                        help="BD interpolation: pchip (default), cubic (classic VCEG-M33), akima")
    parser.add_argument("--rate", choices=("val_bpp", "real_bpp"), default="val_bpp",
                        help="rate metric: estimated val_bpp (default) or real_bpp from actual coding")
    return parser


if __name__ == "__main__":
    sys.exit(main())
