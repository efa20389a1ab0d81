"""Write the verdict report for one experiment directory.

    python -m analysis.report EXPERIMENT_DIR [--anchor kodak:VTM] [--out DIR] [--method pchip]

Uses the held-out test points of ``python -m analysis.evaluate`` (EXPERIMENT_DIR/evaluation/
points.csv) when they exist and judges them with ``analysis.compare`` (the same code as for
any points file; configurations with an errored seed are "incomplete"); otherwise it falls
back to the validation points and says loudly that there is no verdict. Writes bd_rate.csv, every registered figure
(:mod:`analysis.figures`) and report.md to OUT (default EXPERIMENT_DIR/report). A published
anchor is compared only when the evaluation set is the anchor's set; otherwise one line
says why not. Bad input: one line on stderr, exit status 2.
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from . import anchors, summary
from .bd import METHODS, bd_rate_checked
from .cli import ArgumentParser, run
from .errors import AnalysisError
from .experiment import Experiment, load_experiment
from .figures import ReportData, registered_figures
from .verdict import compare
from .points import OFF, eligible_trials, evaluation_points, mean_curve, ranking, validation_points

NO_INTERVAL = "validation only: no verdict"


def write_report(experiment_dir: str | os.PathLike[str], out: str | os.PathLike[str] | None = None,
                 anchor: str | None = None, method: str = "pchip") -> Path:
    """Build every report file and return the folder they are in."""
    data = report_data(experiment_dir, anchor, method)
    folder = Path(out) if out is not None else Path(experiment_dir) / "report"
    folder.mkdir(parents=True, exist_ok=True)
    data.table.to_csv(folder / "bd_rate.csv", index=False)
    specs = registered_figures()
    for spec in specs:
        spec.draw(data).savefig(folder / spec.filename, dpi=110)  # a pyplot-free Figure saves through Agg
    (folder / "report.md").write_text(summary.render(data, specs))
    return folder


def report_data(experiment_dir: str | os.PathLike[str], anchor: str | None = None,
                method: str = "pchip") -> ReportData:
    """Everything the report shows: points (test, else validation), the BD table, the anchor decision."""
    if method not in METHODS:
        raise AnalysisError(f"BD method must be one of {', '.join(METHODS)}, not {method!r}")
    experiment = load_experiment(experiment_dir)
    off = experiment.trials.loc[experiment.trials["is_off"], "configuration"]
    reference = str(off.iloc[0]) if len(off) else OFF
    points = evaluation_points(experiment_dir)
    dropped = 0
    if points is not None:
        source = "test"
        eligible = set(eligible_trials(experiment)["trial_id"])
        dropped = int((~points["trial_id"].isin(eligible)).sum())
        points = points[points["trial_id"].isin(eligible)]
    else:
        source, points = "validation", validation_points(experiment)
    resample = source == "test"
    metrics = set(experiment.trials.get("config/metric", pd.Series(dtype=object)).dropna())
    quality = "ms_ssim_db" if metrics == {"ms-ssim"} else "psnr"
    table = compare(points, reference, quality, method, errored_seeds(experiment), resample,
                    searched=searched_configurations(experiment), paired=paired_seeds(experiment, reference)).table
    table.loc[table["status"] == "no interval", "status"] = NO_INTERVAL
    ranks = ranking(experiment).set_index("configuration")
    table["val_rd_score"] = table["configuration"].map(ranks["rd_score"])
    table["val_rank"] = table["configuration"].map(ranks["rank"]).astype("Int64")
    table["source"] = source

    refused, reference_curve = None, None
    if anchor:
        anchors.load_anchor(anchor)   # an unknown name is an error, not a refusal
        images = None
        if source == "test":
            images = [(int(w), int(h)) for w, h in points.drop_duplicates("image")[["width", "height"]].to_numpy()] \
                if {"width", "height"} <= set(points) else []
        refused = anchors.refusal(anchor, images)
        if refused is None:
            reference_curve = anchors.load_anchor(anchor)
    table["anchor"] = anchor if reference_curve is not None else None
    table["bd_rate_vs_anchor"] = [
        _vs_anchor(points, configuration, reference_curve, method, quality) for configuration in table["configuration"]]
    return ReportData(experiment, points, source, table, reference, reference_curve, method, anchor, refused,
                      dropped, quality)


def errored_seeds(experiment: Experiment) -> dict[str, str]:
    """Configuration → why it is incomplete, for every configuration ASHA did not stop that has an ERROR trial."""
    trials = experiment.trials
    stopped = set(trials.loc[trials["status"] == "STOPPED", "configuration"])
    failed = trials[(trials["status"] == "ERROR") & ~trials["configuration"].isin(stopped)].sort_values("seed")
    return {configuration: "; ".join(f"seed {row.seed} errored ({row.error or 'no message'})"
                                     for row in rows.itertuples())
            for configuration, rows in failed.groupby("configuration", sort=True)}


# what fixes a trial's initial weights (seeded before the model is built) and its batch order
PAIRING_KEYS = ("seed", "model_name", "init_weights", "train_dataset", "batch_size", "patch_size", "steps_per_epoch")


def paired_seeds(experiment: Experiment, reference: str) -> dict[str, bool]:
    """Per configuration: whether each of its trials starts from the same initial weights and sees the same
    batches as the reference's trial of the same seed (the trials' recorded config, not the seed numbers)."""
    trials = eligible_trials(experiment)
    columns = [f"config/{key}" for key in PAIRING_KEYS if f"config/{key}" in trials]
    keys = {name: {tuple(str(v) for v in row) for row in rows[columns].itertuples(index=False)}
            for name, rows in trials.groupby("configuration")}
    off = keys.get(reference, set())
    return {name: bool(own) and own == off for name, own in keys.items() if name != reference}


def searched_configurations(experiment: Experiment) -> int:
    """N: every configuration other than off that the search tried (the evaluated ones were chosen among them)."""
    trials = experiment.trials
    return int(trials.loc[~trials["is_off"], "configuration"].nunique())


def _vs_anchor(points: pd.DataFrame, configuration: str, anchor, method: str, quality: str) -> float:
    if anchor is None:
        return math.nan
    curve = mean_curve(points, configuration, quality)
    if quality == "psnr":
        rate, distortion = anchor.bpp, anchor.psnr
    elif anchor.ms_ssim_db is not None:
        rate, distortion = anchor.msssim_bpp, anchor.ms_ssim_db
    else:
        return math.nan
    return bd_rate_checked(rate, distortion, curve["bpp"], curve[quality], method=method).value


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point; returns the exit status."""
    def body() -> Path:
        args = _parser().parse_args(argv)
        anchor = None if args.anchor in (None, "none") else args.anchor
        return write_report(args.experiment, args.out, anchor, args.method) / "report.md"

    return run("analysis.report", body)


def _parser() -> ArgumentParser:
    parser = ArgumentParser(prog="python -m analysis.report", description=__doc__.splitlines()[0])
    parser.add_argument("experiment", help="experiment directory (STORAGE/NAME of search.run)")
    parser.add_argument("--anchor", help="published curve to compare with, dataset:series or FILE.json:dataset:series "
                                         "(only on that dataset; see analysis.list_anchors())")
    parser.add_argument("--out", help="output folder (default EXPERIMENT/report)")
    parser.add_argument("--method", choices=METHODS, default="pchip",
                        help="BD interpolation: pchip (default), cubic (classic VCEG-M33), akima")
    return parser


if __name__ == "__main__":
    sys.exit(main())
