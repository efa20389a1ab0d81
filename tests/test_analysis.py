"""Tests for the analysis package: BD maths, anchors, the interval, experiment loading, report, notebooks.

Statistics are tested on analytic points tables (rates 0.9x off's at the same PSNRs must come
out at -10 % BD-rate; the verdict rule's error rates are tests/test_verdict_simulation.py); loading, the report and the notebooks run on the real experiment of
tests/test_evaluate.py (HPCM_Tiny models trained with trainable.curve, coded for real).
"""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import pandas as pd

from analysis import (
    AnalysisError, bd_interval, bd_psnr, bd_psnr_checked, bd_rate, bd_rate_checked, bd_table, list_anchors,
    load_anchor, load_experiment, register_figure,
)
from analysis.anchors import published_claims, refusal
from analysis.points import ranking, select_configurations
from analysis.report import main
from analysis.verdict import CSV_COLUMNS
from tests.test_evaluate import copy_experiment, evaluated_experiment_dir, real_experiment_dir

REPO = Path(__file__).resolve().parents[1]
LAMBDAS = [0.0018, 0.0035, 0.0067, 0.013]
BASE_BPP = [0.20, 0.35, 0.55, 0.80]
BASE_PSNR = [28.0, 30.0, 32.0, 34.0]
# --- BD-rate / BD-PSNR ---------------------------------------------------------------------------

@pytest.mark.parametrize("method", ["pchip", "cubic", "akima"])
def test_rates_at_ninety_percent_give_minus_ten_percent(method):
    rate = np.array(BASE_BPP)
    assert bd_rate(rate, BASE_PSNR, 0.9 * rate, BASE_PSNR, method=method) == pytest.approx(-10.0, abs=1e-9)


def test_identical_curves_give_zero():
    assert bd_rate(BASE_BPP, BASE_PSNR, BASE_BPP, BASE_PSNR) == pytest.approx(0.0, abs=1e-12)
    assert bd_psnr(BASE_BPP, BASE_PSNR, BASE_BPP, BASE_PSNR) == pytest.approx(0.0, abs=1e-12)


def test_half_db_shift_at_equal_rates():
    shifted = [p + 0.5 for p in BASE_PSNR]
    assert bd_psnr(BASE_BPP, BASE_PSNR, BASE_BPP, shifted) == pytest.approx(0.5, abs=1e-9)
    assert bd_rate(BASE_BPP, BASE_PSNR, BASE_BPP, shifted) < 0


def test_point_order_does_not_matter():
    order = [2, 0, 3, 1]
    result = bd_rate([BASE_BPP[i] * 0.9 for i in order], [BASE_PSNR[i] for i in order], BASE_BPP, BASE_PSNR)
    assert result == pytest.approx(100 / 0.9 - 100)


@pytest.mark.parametrize("test_curve, reason", [
    ((BASE_BPP[:3], BASE_PSNR[:3]), "fewer than 4 RD points"),
    ((BASE_BPP, [28.0, 31.0, 30.0, 34.0]), "non-monotone"),
    ((BASE_BPP, [40.0, 41.0, 42.0, 43.0]), "no overlap of the distortion ranges"),
    ((BASE_BPP, [28.0, math.nan, 32.0, 34.0]), "NaN"),
])
def test_undefined_bd_rate_is_nan_with_reason(test_curve, reason):
    result = bd_rate_checked(BASE_BPP, BASE_PSNR, *test_curve)
    assert math.isnan(result.value) and reason in result.reason
    assert math.isnan(bd_rate(BASE_BPP, BASE_PSNR, *test_curve))


def test_bd_psnr_needs_overlapping_rates():
    result = bd_psnr_checked(BASE_BPP, BASE_PSNR, [5.0, 6.0, 7.0, 8.0], BASE_PSNR)
    assert math.isnan(result.value) and result.reason == "no overlap of the rate ranges"


def test_bad_method_is_an_analysis_error():
    with pytest.raises(AnalysisError, match="pchip"):
        bd_rate(BASE_BPP, BASE_PSNR, BASE_BPP, BASE_PSNR, method="linear")


# --- anchors -------------------------------------------------------------------------------------

def test_published_anchors_carry_sources():
    assert {"kodak:VTM", "kodak:HPCM-Large", "tecnick:VTM-18.0"} <= set(list_anchors())
    vtm = load_anchor("kodak:VTM")
    assert len(vtm.bpp) == len(vtm.psnr) == 8 and "CompressAI" in vtm.source
    assert vtm.ms_ssim_db is not None and np.all(np.diff(vtm.ms_ssim_db) > 0)
    assert all(load_anchor(name).source for name in list_anchors())
    claims = published_claims()
    assert claims.table.loc["HPCM-Large", "kodak"] == -19.19 and claims.about


def test_published_hpcm_large_vs_vtm18_matches_the_stated_figure():
    large, vtm = load_anchor("kodak:HPCM-Large"), load_anchor("kodak:VTM-18.0")
    assert bd_rate(vtm.bpp, vtm.psnr, large.bpp, large.psnr) == pytest.approx(-19.4, abs=0.1)


def test_unknown_anchor_names_the_available_ones():
    with pytest.raises(AnalysisError, match="available: .*kodak:VTM"):
        load_anchor("kodak:JPEG")


def test_user_anchor_file(tmp_path):
    path = tmp_path / "mine.json"
    path.write_text(json.dumps({"about": "mine", "set": {"codec": {"bpp": BASE_BPP, "psnr": BASE_PSNR,
                                                                     "source": "lab run 7"}}}))
    assert load_anchor("set:codec", path=path).source == "lab run 7"
    assert load_anchor(f"{path}:set:codec").bpp.tolist() == BASE_BPP
    assert list_anchors(path) == ["set:codec"]
    with pytest.raises(AnalysisError, match="not found"):
        load_anchor("set:codec", path=tmp_path / "missing.json")


def test_anchor_refused_unless_the_evaluation_set_is_that_set(tmp_path):
    kodak = [(768, 512)] * 20 + [(512, 768)] * 4
    assert refusal("kodak:VTM", kodak) is None
    assert refusal("tecnick:HPCM-Base", [(1200, 1200)] * 100) is None
    assert refusal("clic_pro_valid:HPCM-Base", [(2048, 1365)] * 41) is None
    assert "has 4 images, kodak has 24" in refusal("kodak:VTM", kodak[:4])
    assert "is 500x768, not a kodak size" in refusal("kodak:VTM", kodak[:23] + [(500, 768)])
    assert "not a tecnick size" in refusal("tecnick:VTM-18.0", [(1200, 1200)] * 99 + [(768, 512)])
    assert "no test-set evaluation" in refusal("kodak:VTM", None)
    own = tmp_path / "own.json"
    own.write_text(json.dumps({"set": {"codec": {"bpp": BASE_BPP, "psnr": BASE_PSNR, "source": "lab"}}}))
    assert "does not describe the set set" in refusal(f"{own}:set:codec", kodak)


# --- the interval: analytic points tables ---------------------------------------------------------

def points_table(n_images: int, factor: float = 0.9, n_seeds: int = 1, image_noise: float = 0.05,
                 seed_noise: float = 0.0, seed: int = 0) -> pd.DataFrame:
    """off and "x" on the same images; x's rates are ``factor`` x off's at equal PSNR, plus noise per
    image × λ (independent between the two configurations) and per seed."""
    rng = np.random.default_rng(seed)
    image_rate = rng.lognormal(0.0, 0.3, n_images)      # some images are harder: paired between the two
    image_psnr = rng.normal(0.0, 1.5, n_images)
    rows = []
    for configuration, scale in (("off", 1.0), ("x", factor)):
        for s in range(n_seeds):
            seed_effect = rng.normal(0.0, seed_noise)
            for lmbda, bpp, psnr in zip(LAMBDAS, BASE_BPP, BASE_PSNR):
                noise = rng.normal(0.0, image_noise, n_images)
                for i in range(n_images):
                    rows.append({"configuration": configuration, "is_off": configuration == "off", "seed": s,
                                 "lmbda": lmbda, "image": f"img{i:03d}", "trial_id": f"{configuration}{s}",
                                 "bpp": bpp * scale * image_rate[i] * math.exp(seed_effect + noise[i]),
                                 "psnr": psnr + image_psnr[i], "ms_ssim_db": math.nan})
    return pd.DataFrame(rows)


def test_interval_contains_the_estimate_and_shrinks_with_more_images():
    few = bd_interval(points_table(6), "x", "off")
    many = bd_interval(points_table(96), "x", "off")
    for result in (few, many):
        assert result.ci_low < result.bd_rate_vs_off < result.ci_high
        assert result.bd_rate_vs_off == pytest.approx(-10, abs=3)
    assert (many.ci_high - many.ci_low) < 0.5 * (few.ci_high - few.ci_low)
    assert many.n_images == 96 and many.n_seeds == 1 and many.undefined_share == 0.0
    assert few.df == 5 and many.df == 95            # 1 seed: the image level alone, n - 1 degrees of freedom


def test_rates_at_ninety_percent_are_better_with_an_interval_excluding_zero():
    table = bd_table(points_table(24, n_seeds=3, seed_noise=0.01), "off").set_index("configuration")
    row = table.loc["x"]
    assert row["status"] == "better" and row["ci_high"] < 0
    assert row["ci_low"] < -10 < row["ci_high"] and row["bd_psnr_vs_off"] > 0
    worse = bd_table(points_table(24, factor=1.1, n_seeds=3, seed_noise=0.01), "off").set_index("configuration")
    assert worse.loc["x", "status"] == "worse" and worse.loc["x", "ci_low"] > 0


def test_table_has_off_at_zero_and_says_why_bd_is_undefined():
    points = points_table(8)
    broken = points.copy()
    broken.loc[(broken["configuration"] == "x") & (broken["lmbda"] == LAMBDAS[2]), "psnr"] += 5   # not monotone
    incomplete = points.drop(index=points.index[-1])
    bent = broken[broken["configuration"] == "x"].assign(configuration="bent")
    gap = incomplete[incomplete["configuration"] == "x"].assign(configuration="gap")
    table = bd_table(pd.concat([points, bent, gap]), "off").set_index("configuration")
    assert table.loc["off", "bd_rate_vs_off"] == 0 and table.loc["off", "status"] == "reference"
    assert table.loc["x", "status"] == "indicative: 1 seed, 8 test images" and table.loc["x", "ci_high"] < 0
    assert table.loc["bent", "status"].startswith("undefined: non-monotone configuration's curve")
    assert table.loc["gap", "status"].startswith("undefined:") and "not evaluated" in table.loc["gap", "status"]
    # K counts only configurations that can get a verdict: not the undefined ones nor x (1 seed, 8 images)
    assert table.loc["x", "confidence"] == pytest.approx(0.95) and table.loc["x", "family"] == 0
    assert list(table.columns[:7]) == ["n_seeds", "n_images", "bd_rate_vs_off", "ci_low", "ci_high", "status",
                                       "undefined_share"]


# --- loading a real experiment -------------------------------------------------------------------

@pytest.fixture
def experiment(tmp_path_factory, tmp_path) -> Path:
    return copy_experiment(real_experiment_dir(tmp_path_factory) / "exp", tmp_path / "exp")


@pytest.fixture
def evaluated(tmp_path_factory, tmp_path) -> Path:
    return copy_experiment(evaluated_experiment_dir(tmp_path_factory) / "exp", tmp_path / "exp")


def test_load_experiment_trials_history_and_statuses(experiment):
    loaded = load_experiment(experiment)
    trials = loaded.trials.set_index("trial_id")
    assert len(trials) == 6 and loaded.status_source == "results.csv"
    assert sorted(trials["status"]) == ["ERROR", "STOPPED", "TERMINATED", "TERMINATED", "TERMINATED", "TERMINATED"]
    stopped = trials[trials["status"] == "STOPPED"].iloc[0]
    assert stopped["configuration"] == "delta=0.3" and stopped["stopped_epoch"] == 1
    assert "non-finite loss" in trials.loc["f00df_00099", "error"]
    assert loaded.lambdas == [0.002, 0.006, 0.018, 0.054]
    history = loaded.history
    assert len(history) == (4 * 2 + 1) * 4               # 4 trials x 2 epochs + 1 stopped x 1 epoch, 4 λ each
    assert history[["val_bpp", "val_psnr", "val_loss"]].notna().all().all()
    # rd_score is the mean over λ of log(val_loss), as the trial reported it
    last = history[(history["trial_id"] == "f00d0_00000") & (history["epoch"] == 2)]
    assert trials.loc["f00d0_00000", "rd_score"] == pytest.approx(np.log(last["val_loss"]).mean(), rel=1e-9)
    assert loaded.info["model"] == "HPCM_Tiny"


def test_running_search_without_results_csv_uses_heuristics(experiment):
    (experiment / "results.csv").unlink()
    trials = load_experiment(experiment).trials.set_index("trial_id")
    assert trials.loc["f00df_00099", "status"] == "ERROR"
    assert trials.loc["f00d0_00000", "status"] == "TERMINATED"     # reached params' epochs
    assert trials.loc["f00d4_00004", "status"] == "RUNNING"        # stopped one looks unfinished


def test_old_layouts_and_missing_dirs_are_one_line_errors(tmp_path):
    with pytest.raises(AnalysisError, match="not found"):
        load_experiment(tmp_path / "nope")
    (tmp_path / "lambda=0.013" / "trial").mkdir(parents=True)
    with pytest.raises(AnalysisError, match="λ brackets"):
        load_experiment(tmp_path)
    trial = tmp_path / "t"
    trial.mkdir()
    (trial / "params.json").write_text(json.dumps({"lmbda": 0.013}))
    with pytest.raises(AnalysisError, match="no 'configuration'"):
        load_experiment(tmp_path)


def test_ranking_excludes_stopped_and_always_keeps_off(experiment):
    loaded = load_experiment(experiment)
    table = ranking(loaded)
    assert set(table["configuration"]) == {"off", "delta=0.1"}
    assert table.set_index("configuration").loc["delta=0.1", "n_seeds"] == 2   # the errored seed 2 is dropped
    assert select_configurations(loaded, 0) == ["off"]
    assert select_configurations(loaded, 5) == ["off", "delta=0.1"]


# --- report ---------------------------------------------------------------------------------------

def test_report_without_evaluation_falls_back_to_validation_loudly(experiment):
    assert main([str(experiment), "--anchor", "kodak:VTM"]) == 0
    text = (experiment / "report" / "report.md").read_text()
    assert "**NO VERDICT: there is no test-set evaluation yet.**" in text
    assert "anchor kodak:VTM not compared: no test-set evaluation" in text
    table = pd.read_csv(experiment / "report" / "bd_rate.csv")
    assert set(table["source"]) == {"validation"} and table["ci_low"].isna().all()
    assert not {"better", "worse", "not significant"} & set(table["status"])
    assert "delta=0.3" not in set(table["configuration"])


def _analytic_test_points(evaluated: Path) -> Path:
    """Replace the evaluation's points: delta=0.1's rates are 0.9x off's on every image and seed."""
    path = evaluated / "evaluation" / "points.csv"
    points = pd.read_csv(path)
    off = points[points["configuration"] == "off"].sort_values(["seed", "lmbda", "image"])
    x = points[points["configuration"] == "delta=0.1"].sort_values(["seed", "lmbda", "image"])
    analytic = (np.array(BASE_BPP)[off["lmbda"].map({l: i for i, l in enumerate(sorted(set(off["lmbda"])))})]
                * (1 + 0.1 * off["height"] / 170))
    off = off.assign(bpp=analytic, psnr=off["lmbda"].map(dict(zip(sorted(set(off["lmbda"])), BASE_PSNR))))
    x = x.assign(bpp=0.9 * off["bpp"].to_numpy(), psnr=off["psnr"].to_numpy())
    pd.concat([off, x]).to_csv(path, index=False)
    return path


def _forget_errored_trial(experiment: Path) -> None:
    shutil.rmtree(next(experiment.glob("*f00df_00099*")))
    results = pd.read_csv(experiment / "results.csv", dtype={"trial_id": str})
    results[results["trial_id"] != "f00df_00099"].to_csv(experiment / "results.csv", index=False)


def test_report_marks_a_configuration_with_an_errored_seed_incomplete(evaluated):
    """delta=0.1's seed 2 errored: it is not judged on seeds 0 and 1, however good they look."""
    _analytic_test_points(evaluated)
    assert main([str(evaluated)]) == 0
    row = pd.read_csv(evaluated / "report" / "bd_rate.csv").set_index("configuration").loc["delta=0.1"]
    assert row["status"] == "incomplete: seed 2 errored (error: non-finite loss (nan) at epoch 1, step 3)"
    assert math.isnan(row["bd_rate_vs_off"]) and math.isnan(row["ci_low"])
    text = (evaluated / "report" / "report.md").read_text()
    assert "1 configuration(s) are incomplete (an errored seed: not judged on its survivors)" in text
    assert "| incomplete: seed 2 errored (error: non-finite loss" in text and "beats off" not in text


def test_report_is_compare_on_the_evaluation_points(evaluated, tmp_path):
    """Real experiment (errored trial removed), analytic test points: BD-rate exactly -10 %, but 2 seeds and
    3 test images are only indicative; analysis.compare on the same points gives the same table."""
    from analysis.compare import main as compare_main

    _forget_errored_trial(evaluated)
    points = _analytic_test_points(evaluated)
    assert main([str(evaluated)]) == 0
    table = pd.read_csv(evaluated / "report" / "bd_rate.csv").set_index("configuration")
    row = table.loc["delta=0.1"]
    assert row["bd_rate_vs_off"] == pytest.approx(-10, abs=1e-6) and row["ci_high"] == pytest.approx(-10, abs=1e-6)
    assert row["status"] == "indicative: 2 seeds, 3 test images" and row["undefined_share"] == 0
    assert row["n_seeds"] == 2 and table.loc["off", "bd_rate_vs_off"] == 0 and "delta=0.3" not in table.index
    text = (evaluated / "report" / "report.md").read_text()
    assert "**No verdict: the evidence is only indicative** (2 seeds, 3 test images; a verdict needs ≥ 3 seeds" in text
    assert "beats off" not in text and "delete-one jackknife" in text and "Holm's step-down" in text
    # the selection is stated: N counts every configuration the search tried, delta=0.3 included
    assert "at least the N = 2 configurations the search tried" in text
    assert "| `delta=0.1` | 2 | paired | 3 |" in text
    for name in ("rd_curves.png", "bd_rate_over_epochs.png", "learning_curves.png", "hparam_effects.png"):
        assert (evaluated / "report" / name).stat().st_size > 0, name
    assert compare_main([str(points), "--out", str(tmp_path / "compare")]) == 0
    alone = pd.read_csv(tmp_path / "compare" / "bd_rate.csv")
    pd.testing.assert_frame_equal(alone[list(CSV_COLUMNS)], table.reset_index()[list(CSV_COLUMNS)])


def test_a_registered_figure_is_written_and_listed(evaluated):
    from analysis import figures
    from matplotlib.figure import Figure

    @register_figure("probe.png", "a probe figure")
    def probe(data):
        figure = Figure()
        figure.subplots().plot(data.points["bpp"], data.points["psnr"], ".")
        return figure

    try:
        assert main([str(evaluated)]) == 0
    finally:
        figures._FIGURES.pop("probe.png")
    assert (evaluated / "report" / "probe.png").stat().st_size > 0
    assert "![probe.png](probe.png)\n\na probe figure." in (evaluated / "report" / "report.md").read_text()


def test_cli_missing_dir_exits_2_with_one_line(tmp_path):
    run = subprocess.run([sys.executable, "-m", "analysis.report", str(tmp_path / "nope")],
                         capture_output=True, text=True, cwd=REPO, timeout=60)
    assert run.returncode == 2 and run.stdout == ""
    assert run.stderr.count("\n") == 1 and "not found" in run.stderr


def test_cli_bad_options_exit_2_with_one_line(experiment, capsys):
    for argv in (["--method", "linear"], ["--anchor", "kodak:JPEG"], ["--n-boot", "200"]):   # no bootstrap now
        assert main([str(experiment), *argv]) == 2
        assert capsys.readouterr().err.count("\n") == 1


# --- notebooks (headless, nbclient; each starts a kernel) ----------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize("name", ["rd_curves.ipynb", "hyperparameter_effects.ipynb"])
def test_notebook_executes_headless(name, evaluated):
    from analysis.notebooks import execute

    notebook = execute(REPO / "analysis" / "notebooks" / name, evaluated, timeout=120)
    outputs = [output for cell in notebook.cells if cell.cell_type == "code" for output in cell.outputs]
    assert not [output for output in outputs if output.output_type == "error"]
    assert any("image/png" in output.get("data", {}) for output in outputs)
