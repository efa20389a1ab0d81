"""``python -m analysis.compare``: any per-image RD points judged with the report's statistics.

Points come from tests/synthetic_rd.py (known true BD-rates); the checks compare with
independent computations (a hand-made mean curve through bjontegaard, a count of the
replicates that must be undefined), never with the function under test.
"""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import bjontegaard
import numpy as np
import pandas as pd
import pytest

from analysis.compare import main
from analysis.errors import AnalysisError
from analysis.verdict import CSV_COLUMNS, bd_table
from tests.synthetic_rd import LAMBDAS, Noise, synthetic_points

REPO = Path(__file__).resolve().parents[1]
QUIET = Noise(seed_sd=0.01, pairing=0.5, image_sd=0.02, noise_sd=0.01)


def write(points: pd.DataFrame, path: Path) -> Path:
    points.to_csv(path, index=False)
    return path


def test_compare_writes_the_table_and_a_report_with_the_verdict(tmp_path):
    points = synthetic_points({"better": -0.10, "same": 0.0}, 3, 28, QUIET, np.random.default_rng(3))
    assert main([str(write(points, tmp_path / "points.csv")), "--out", str(tmp_path / "out")]) == 0
    table = pd.read_csv(tmp_path / "out" / "bd_rate.csv").set_index("configuration")
    assert list(pd.read_csv(tmp_path / "out" / "bd_rate.csv").columns[:8]) == list(CSV_COLUMNS)
    # the point estimate is bjontegaard on the mean curves, computed here independently
    mean = points.groupby(["configuration", "lmbda"])[["bpp", "psnr"]].mean()
    expected = bjontegaard.bd_rate(mean.loc["off", "bpp"], mean.loc["off", "psnr"], mean.loc["better", "bpp"],
                                   mean.loc["better", "psnr"], method="pchip", require_matching_points=False)
    row = table.loc["better"]
    assert row["bd_rate_vs_off"] == pytest.approx(expected, abs=1e-9)
    assert row["status"] == "better" and row["ci_low"] < -10 < row["ci_high"] < 0
    assert row["n_seeds"] == 3 and row["n_images"] == 28 and row["undefined_share"] == 0
    assert table.loc["same", "status"] == "not significant" and table.loc["off", "status"] == "reference"
    text = (tmp_path / "out" / "report.md").read_text()
    # Holm: the clearer configuration is judged at 1 - 5 %/2, the other at 1 - 5 %/1
    assert table.loc["better", "confidence"] == pytest.approx(0.975) and table.loc["same", "confidence"] == 0.95
    assert "**`better` beats off**" in text and "97.5% interval, Holm over K = 2) over 3 seed(s) and 28 test" in text
    assert "| `better` | 3 | paired | 28 | " in text and "| 0.0% |" in text      # undefined share next to the interval


def test_configurations_chosen_among_n_are_judged_as_one_of_n(tmp_path):
    points = synthetic_points({"better": -0.10}, 3, 24, QUIET, np.random.default_rng(3))
    assert main([str(write(points, tmp_path / "points.csv")), "--searched", "20", "--out", str(tmp_path / "o")]) == 0
    table = pd.read_csv(tmp_path / "o" / "bd_rate.csv").set_index("configuration")
    assert table.loc["better", "confidence"] == pytest.approx(1 - 0.05 / 20) and table.loc["better", "family"] == 20
    text = (tmp_path / "o" / "report.md").read_text()
    assert "Holm over K = 20, chosen among N = 20 searched) over 3 seed(s)" in text
    assert "at least the N = 20 configurations the search tried" in text


def test_one_seed_and_four_images_is_indicative_in_the_status_and_the_headline(tmp_path):
    points = synthetic_points({"x": -0.10}, 1, 4, Noise(seed_sd=0.0, image_sd=0.01, noise_sd=0.005),
                              np.random.default_rng(0))
    assert main([str(write(points, tmp_path / "p.csv")), "--out", str(tmp_path / "out")]) == 0
    table = pd.read_csv(tmp_path / "out" / "bd_rate.csv").set_index("configuration")
    assert table.loc["x", "ci_high"] < 0                             # the interval excludes 0 ...
    assert table.loc["x", "status"] == "indicative: 1 seed, 4 test images"   # ... but that is no verdict
    text = (tmp_path / "out" / "report.md").read_text()
    assert "**No verdict: the evidence is only indicative** (1 seed, 4 test images" in text
    assert "beats off" not in text and "test-image sampling only, not training noise" in text


@pytest.mark.parametrize("rng_seed", range(4))
def test_the_demo_sized_interval_is_finite_and_silent(rng_seed):
    """1 seed x 4 images (the demo): a bootstrap draw of one image repeated has no SE; it is left out
    instead of stretching the interval to infinity (and numpy warning on the user's terminal)."""
    import warnings

    points = synthetic_points({"x": 0.05}, 1, 4, Noise(seed_sd=0.0, image_sd=0.05, noise_sd=0.01),
                              np.random.default_rng(rng_seed))
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        table = bd_table(points, "off").set_index("configuration")
    assert np.isfinite(table.loc["x", ["ci_low", "ci_high"]].to_numpy(dtype=float)).all()
    assert table.loc["x", "ci_low"] < table.loc["x", "bd_rate_vs_off"] < table.loc["x", "ci_high"]


def test_reference_by_name_and_unpaired_seeds(tmp_path):
    points = synthetic_points({"mine": -0.10}, 3, 24, QUIET, np.random.default_rng(1), reference="theirs")
    points = points.drop(columns="is_off")
    points.loc[points["configuration"] == "mine", "seed"] += 10     # different seed sets: not paired
    assert main([str(write(points, tmp_path / "p.csv")), "--reference", "theirs"]) == 0
    table = pd.read_csv(tmp_path / "compare" / "bd_rate.csv").set_index("configuration")
    assert table.loc["theirs", "status"] == "reference" and not table.loc["mine", "paired_seeds"]
    assert table.loc["mine", "status"] == "better"
    assert "Seeds not paired with the reference's" in (tmp_path / "compare" / "report.md").read_text()


def test_paired_seeds_narrow_the_interval_when_seed_noise_is_shared():
    """Seed s of a configuration and of off share most of their training noise: pairing removes it."""
    shared = Noise(seed_sd=0.05, pairing=0.95, image_sd=0.01, noise_sd=0.01)
    points = synthetic_points({"x": -0.05}, 4, 12, shared, np.random.default_rng(5))
    unpaired = points.copy()
    unpaired.loc[unpaired["configuration"] == "x", "seed"] += 100
    paired_row, unpaired_row = (bd_table(p, "off").set_index("configuration").loc["x"] for p in (points, unpaired))
    assert paired_row["paired_seeds"] and not unpaired_row["paired_seeds"]
    assert paired_row["bd_rate_vs_off"] == pytest.approx(unpaired_row["bd_rate_vs_off"])
    assert paired_row["se"] < 0.5 * unpaired_row["se"]


def test_a_copy_of_off_is_zero_with_a_zero_width_interval():
    points = synthetic_points({"x": 0.0}, 3, 24, QUIET, np.random.default_rng(2))
    off = points[points["configuration"] == "off"]
    same = pd.concat([off, off.assign(configuration="copy", is_off=False)])
    row = bd_table(same, "off").set_index("configuration").loc["copy"]
    assert row["bd_rate_vs_off"] == row["ci_low"] == row["ci_high"] == 0 and row["status"] == "not significant"


def _undefined_without_image_zero(n_images: int) -> pd.DataFrame:
    """Points where x's mean curve is monotone only thanks to image 0: leaving it out breaks the curve."""
    points = synthetic_points({"x": -0.10}, 3, n_images, Noise(0.0, 0.0, 0.0, 0.0), np.random.default_rng(0))
    x, top = points["configuration"] == "x", points["lmbda"] == LAMBDAS[-1]
    below = points["lmbda"] == LAMBDAS[-2]
    # every image of x loses 3 dB at the top λ (non-monotone), image 0 gains enough to keep the mean rising
    points.loc[x & top, "psnr"] = points.loc[x & below, "psnr"].to_numpy() - 1.0
    points.loc[x & top & (points["image"] == "img000"), "psnr"] += 3.0 * n_images
    return points


@pytest.mark.parametrize("n_images", [24, 12])
def test_an_undefined_replicate_is_counted_and_makes_the_interval_unreliable(tmp_path, n_images):
    """x's mean curve rests on image 0: leaving it out breaks the curve. Its replicate is the most
    influential one, so the interval from the others is too narrow: no verdict, even at 1 in 27."""
    points = _undefined_without_image_zero(n_images)
    mean = points[points["configuration"] == "x"].groupby("lmbda")["psnr"].mean()
    assert mean.is_monotonic_increasing                  # the full curve is fine
    assert main([str(write(points, tmp_path / "p.csv")), "--out", str(tmp_path / "out")]) == 0
    row = pd.read_csv(tmp_path / "out" / "bd_rate.csv").set_index("configuration").loc["x"]
    assert row["undefined_share"] == pytest.approx(1 / (n_images + 3))   # one image replicate of I + 3 seed ones
    assert row["status"].startswith(f"unreliable: {1 / n_images:.0%} of the image jackknife replicates have no "
                                    "BD-rate (non-monotone")
    text = (tmp_path / "out" / "report.md").read_text()
    assert f"| {1 / (n_images + 3):.1%} |" in text


def test_incomplete_configuration_is_listed_not_judged():
    points = synthetic_points({"x": -0.10, "y": 0.0}, 3, 12, QUIET, np.random.default_rng(4))
    table = bd_table(points, "off", incomplete={"x": "seed 2 errored (CUDA out of memory)"}).set_index("configuration")
    assert table.loc["x", "status"] == "incomplete: seed 2 errored (CUDA out of memory)"
    assert math.isnan(table.loc["x", "bd_rate_vs_off"]) and table.loc["y", "confidence"] == 0.95   # K = 1
    everything = bd_table(points, "off", incomplete={"off": "seed 1 errored (x)"})
    assert set(everything["status"]) == {"reference", "incomplete: off seed 1 errored (x)"}


# --- bad input: one line, exit 2 ---------------------------------------------------------------

def _bad_inputs(tmp_path: Path) -> list[tuple[list[str], str]]:
    good = synthetic_points({"x": -0.1}, 1, 4, QUIET, np.random.default_rng(0))
    nan = good.copy()
    nan.loc[5, "psnr"] = math.nan
    three = good[good["lmbda"] != LAMBDAS[0]]
    cases = {
        "missing.csv": (good.drop(columns="bpp"), [], "has no 'bpp' column"),
        "noref.csv": (good.drop(columns="is_off"), [], "no reference: pass --reference"),
        "unknown.csv": (good, ["--reference", "vtm"], "unknown reference 'vtm'"),
        "three.csv": (three, [], "has points at 3 λ(s); a BD-rate needs ≥ 4"),
        "nan.csv": (nan, [], "1 row(s) with a missing, NaN or non-numeric value (first: line 7, column psnr)"),
        "dup.csv": (pd.concat([good, good.head(1)]), [], "2 rows share 1 (configuration, seed, lmbda, image): off, 0, "
                    "0.0018, img000"),
        "onlyoff.csv": (good[good["is_off"]], [], "nothing to compare"),
        "twooff.csv": (good.assign(is_off=True), [], "is_off marks 2 configurations"),
    }
    return [([str(write(frame, tmp_path / name)), *extra], message) for name, (frame, extra, message) in cases.items()] \
        + [([str(tmp_path / "absent.csv")], "points file not found"), ([str(tmp_path / "nan.csv"), "--method", "x"],
                                                                       "invalid choice")]


def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys):
    for argv, message in _bad_inputs(tmp_path):
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and message in err, (argv, err)


def test_cli_as_a_module_exits_2(tmp_path):
    run = subprocess.run([sys.executable, "-m", "analysis.compare", str(tmp_path / "absent.csv")],
                         capture_output=True, text=True, cwd=REPO, timeout=60)
    assert run.returncode == 2 and run.stdout == "" and run.stderr.count("\n") == 1
    assert "RuntimeWarning" not in run.stderr


# --- every input path refuses what the verdict cannot use -----------------------------------------

def test_duplicated_rows_are_refused_in_process_too():
    """A second row for one (configuration, seed, λ, image) was silently overwritten outside the CSV reader."""
    points = synthetic_points({"x": -0.10}, 3, 24, QUIET, np.random.default_rng(6))
    twice = pd.concat([points, points.iloc[[30]].assign(bpp=points["bpp"].iloc[30] * 3)])
    with pytest.raises(AnalysisError, match=r"^points: 2 rows share 1 \(configuration, seed, lmbda, image\): "):
        bd_table(twice, "off")


def test_an_errored_seed_in_the_csv_makes_the_configuration_incomplete(tmp_path):
    points = synthetic_points({"x": -0.10, "y": -0.10}, 3, 24, QUIET, np.random.default_rng(7))
    points["error"] = ""
    failed = (points["configuration"] == "x") & (points["seed"] == 2)
    points.loc[failed, ["bpp", "psnr"]] = math.nan
    points.loc[failed, "error"] = "CUDA out of memory"
    assert main([str(write(points, tmp_path / "p.csv")), "--out", str(tmp_path / "out")]) == 0
    table = pd.read_csv(tmp_path / "out" / "bd_rate.csv").set_index("configuration")
    assert table.loc["x", "status"] == "incomplete: seed 2 errored (CUDA out of memory)"
    assert table.loc["y", "status"] == "better" and table.loc["y", "confidence"] == 0.95      # K = 1: y alone


def test_a_bd_rate_on_a_small_overlap_is_no_verdict():
    """x sits 4 dB above off at every λ: the curves share 2 of the 10 dB they span; BD-rate there is shown,
    judged on a corner of the curves it is not."""
    points = synthetic_points({"x": -0.10}, 3, 24, QUIET, np.random.default_rng(8))
    points.loc[points["configuration"] == "x", "psnr"] += 4.0
    mean = points.groupby(["configuration", "lmbda"])["psnr"].mean()
    off, x = mean.loc["off"], mean.loc["x"]
    overlap = (min(off.max(), x.max()) - max(off.min(), x.min())) / (max(off.max(), x.max()) - min(off.min(), x.min()))
    row = bd_table(points, "off").set_index("configuration").loc["x"]
    assert row["overlap"] == pytest.approx(overlap) and overlap < 0.5
    assert row["status"] == f"partial overlap: the curves share {overlap:.0%} of their quality range (a verdict needs ≥ 50%)"


def test_pairing_comes_from_the_trials_records_not_the_seed_numbers():
    """Same seed numbers, but y started from other weights: y's seeds are not paired with off's, and the
    interval leaves seeds out on each side apart (wider when training noise is shared between pairs)."""
    from analysis.experiment import Experiment
    from analysis.report import paired_seeds

    def trial(name: str, seed: int, init: str | None) -> dict:
        return {"trial_id": f"{name}{seed}", "configuration": name, "is_off": name == "off", "seed": seed,
                "status": "TERMINATED", "config/seed": seed, "config/init_weights": init, "config/batch_size": 8}
    trials = pd.DataFrame([trial(name, s, "warm.pth" if name == "y" else None)
                           for name in ("off", "x", "y") for s in range(3)])
    experiment = Experiment(Path("."), trials, pd.DataFrame(), pd.DataFrame())
    assert paired_seeds(experiment, "off") == {"x": True, "y": False}
    shared = Noise(seed_sd=0.05, pairing=0.95, image_sd=0.01, noise_sd=0.01)
    points = synthetic_points({"x": -0.05, "y": -0.05}, 3, 24, shared, np.random.default_rng(5))
    table = bd_table(points, "off", paired=paired_seeds(experiment, "off")).set_index("configuration")
    assert table.loc["x", "paired_seeds"] and not table.loc["y", "paired_seeds"]
    assert table.loc["y", "se"] > 2 * table.loc["x", "se"]
