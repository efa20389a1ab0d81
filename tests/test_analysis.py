"""Tests for the analysis package: BD maths, anchors, experiment loading, grouping, report, notebooks.

The fake experiments below follow Ray Tune's layout and carry analytic RD values: a group whose
final rates are 0.9x the baseline's at the same PSNRs must come out at exactly -10 % BD-rate.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from analysis import (
    AnalysisError, bd_psnr, bd_psnr_checked, bd_rate, bd_rate_checked, list_anchors, load_anchor,
    load_experiment, rd_points,
)
from analysis.anchors import published_claims
from analysis.comparison import bd_table
from analysis.report import main

REPO = Path(__file__).resolve().parents[1]
LAMBDAS = [0.0018, 0.0035, 0.0067, 0.013]
BASE_BPP = [0.20, 0.35, 0.55, 0.80]
BASE_PSNR = [28.0, 30.0, 32.0, 34.0]
EPOCHS = 3
BASE_CONFIG = {
    "model_name": "HPCM_Tiny", "metric": "mse", "spectral_reg": False, "tau_init": 0.05, "tau_final": 1.0,
    "truncation_epochs": 2, "phase2_reg": False, "delta": 0.1, "distance": "l2", "alignment": "subbands",
    "phase2_sign": "repel", "scale_latents": "full", "phase2_start_epoch": None, "epochs": EPOCHS,
    "batch_size": 4, "learning_rate": 1e-4, "seed": 0, "data_dir": "/data/train",
}
# name: (config overrides, rate factor vs baseline at equal PSNR)
GROUPS = {
    "baseline": ({}, 1.0),
    "delta0.1": ({"phase2_reg": True, "delta": 0.1}, 0.9),
    "delta0.2": ({"phase2_reg": True, "delta": 0.2}, 0.95),
}


def write_trial(root: Path, index: int, config: dict, finals: tuple[float, float] | None,
                epochs: int = EPOCHS, error: str | None = None, done: bool = True) -> str:
    """One Ray trial directory; epochs approach the (bpp, psnr) final point from worse values."""
    trial_id = f"abc12_{index:05d}"
    trial = root / f"train_hpcm_{trial_id}_{index}_lmbda={config['lmbda']}_2026-01-01_00-00-00"
    trial.mkdir(parents=True)
    (trial / "params.json").write_text(json.dumps(config))
    if finals is not None:
        lines = []
        for epoch in range(1, epochs + 1):
            behind = EPOCHS - epoch
            bpp, psnr = finals[0] * (1 + 0.2 * behind), finals[1] - behind
            mse = 10 ** (-psnr / 10)
            lines.append(json.dumps({
                "trial_id": trial_id, "training_iteration": epoch, "epoch": epoch, "phase": "baseline",
                "train_loss": 1.0, "val_loss": config["lmbda"] * 255**2 * mse + bpp, "val_bpp": bpp,
                "val_psnr": psnr, "val_mse": mse, "lr": 1e-4, "done": done and epoch == epochs,
                "time_total_s": 1.0 * epoch, "config": config,
                **({"real_bpp": bpp * 1.01} if epoch == epochs else {}),
            }))
        (trial / "result.json").write_text("\n".join(lines) + "\n")
    if error:
        (trial / "error.txt").write_text(error + "\nTraceback (most recent call last):\n  ...\n")
    return trial_id


def make_experiment(root: Path, lambdas=LAMBDAS, groups=GROUPS) -> Path:
    index = 0
    for overrides, factor in groups.values():
        for position, lmbda in enumerate(lambdas):
            config = {**BASE_CONFIG, **overrides, "lmbda": lmbda}
            write_trial(root, index, config, (BASE_BPP[position] * factor, BASE_PSNR[position]))
            index += 1
    return root


@pytest.fixture
def experiment(tmp_path: Path) -> Path:
    return make_experiment(tmp_path / "exp")


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


# --- loading an experiment -----------------------------------------------------------------------

def test_load_experiment_rows_columns_and_status(experiment):
    df = load_experiment(experiment)
    assert len(df) == 12 * EPOCHS and df["trial_id"].nunique() == 12
    assert {"trial_id", "status", "epoch", "lmbda", "delta", "seed", "val_bpp", "val_psnr", "real_bpp"} <= set(df)
    assert "config" not in df and set(df["status"]) == {"TERMINATED"}
    assert df.attrs["status_source"] == "heuristic"
    assert df.attrs["config_columns"]["lmbda"] == "lmbda"


def test_running_errored_and_torn_trials_load(tmp_path):
    root = tmp_path / "exp"
    config = {**BASE_CONFIG, "lmbda": 0.013, "lr": 3e-4}
    write_trial(root, 0, config, None)
    errored = write_trial(root, 1, config, (0.5, 30.0), epochs=1, error="CUDA out of memory", done=False)
    torn = write_trial(root, 2, config, (0.5, 30.0), epochs=2, done=False)
    with open(next(root.glob(f"*{torn}*")) / "result.json", "a") as handle:
        handle.write('{"trial_id": "abc12_00002", "epo')
    df = load_experiment(root).drop_duplicates("trial_id").set_index("trial_id")
    assert df.loc["abc12_00000", "status"] == "RUNNING" and math.isnan(df.loc["abc12_00000", "val_psnr"])
    assert df.loc[errored, "status"] == "ERROR" and df.loc[errored, "error"] == "CUDA out of memory"
    assert df.loc[torn, "status"] == "RUNNING"
    assert df.loc[torn, "config/lr"] == 3e-4 and df.loc[torn, "lr"] == 1e-4  # config key clashing with a metric


def test_results_csv_status_wins(experiment):
    (experiment / "results.csv").write_text("trial_id,status,error\nabc12_00000,ERROR,NaN loss\n")
    df = load_experiment(experiment).drop_duplicates("trial_id").set_index("trial_id")
    assert df.loc["abc12_00000", "status"] == "ERROR" and df.loc["abc12_00000", "error"] == "NaN loss"
    assert df.loc["abc12_00001", "status"] == "TERMINATED"


def test_missing_or_empty_experiment_is_an_analysis_error(tmp_path):
    with pytest.raises(AnalysisError, match="not found"):
        load_experiment(tmp_path / "nope")
    with pytest.raises(AnalysisError, match="no trials"):
        load_experiment(tmp_path)


# --- grouping across lambda ----------------------------------------------------------------------

def test_groups_across_lambda_and_known_bd_rates(experiment):
    # A worse repeat of a baseline trial, with a different (inert) delta: same curve, best one kept.
    config = {**BASE_CONFIG, "lmbda": LAMBDAS[-1], "delta": 0.3}
    write_trial(experiment, 99, config, (BASE_BPP[-1] * 1.5, BASE_PSNR[-1]))
    points = rd_points(load_experiment(experiment))
    assert len(points) == 12 and points["group"].nunique() == 3
    baseline = points[points["is_baseline"]]
    assert baseline["group"].nunique() == 1 and len(baseline) == 4
    assert baseline["n_trials"].tolist() == [1, 1, 1, 2] and baseline["trial_id"].iloc[-1] == "abc12_00003"
    assert points.attrs["varying"] == ["phase2_reg", "delta"]
    assert set(points["label"]) == {"phase2_reg=False", "phase2_reg=True, delta=0.1", "phase2_reg=True, delta=0.2"}

    table = bd_table(points, load_anchor("kodak:VTM")).set_index("label")
    assert table.loc["phase2_reg=True, delta=0.1", "bd_rate_vs_baseline"] == pytest.approx(-10.0, abs=1e-6)
    assert table.loc["phase2_reg=True, delta=0.2", "bd_rate_vs_baseline"] == pytest.approx(-5.0, abs=1e-6)
    assert table.loc["phase2_reg=False", "bd_rate_vs_baseline"] == pytest.approx(0.0, abs=1e-9)
    assert table["bd_rate_vs_anchor"].notna().all()


def test_select_best_and_real_bpp(experiment):
    result_file = next(experiment.glob("*abc12_00000*")) / "result.json"
    worse = {**json.loads(result_file.read_text().splitlines()[-1]), "epoch": 4, "val_loss": 9.0, "val_bpp": 0.9}
    result_file.write_text(result_file.read_text() + json.dumps(worse) + "\n")
    df = load_experiment(experiment)
    assert rd_points(df, select="final")["epoch"].max() == 4
    best = rd_points(df, select="best")
    assert (best["epoch"] == EPOCHS).all() and best["bpp"].iloc[0] == pytest.approx(BASE_BPP[0])
    real = rd_points(df, rate="real_bpp")
    assert real["bpp"].iloc[0] == pytest.approx(BASE_BPP[0] * 1.01)
    with pytest.raises(AnalysisError, match="final epoch only"):
        rd_points(df, select="best", rate="real_bpp")


def test_seed_splits_groups_and_needs_its_own_baseline(tmp_path):
    groups = {**GROUPS, "seed1": ({"phase2_reg": True, "delta": 0.1, "seed": 1}, 0.9)}
    points = rd_points(load_experiment(make_experiment(tmp_path / "exp", groups=groups)))
    table = bd_table(points).set_index("label")
    row = table.loc["phase2_reg=True, delta=0.1, seed=1"]
    assert math.isnan(row["bd_rate_vs_baseline"]) and "no baseline group" in row["bd_rate_vs_baseline_reason"]


# --- report CLI ----------------------------------------------------------------------------------

def test_report_writes_every_file(experiment, tmp_path):
    out = tmp_path / "report"
    assert main([str(experiment), "--out", str(out), "--anchor", "kodak:VTM"]) == 0
    for name in ("bd_rate.csv", "rd_curves.png", "hparam_effects.png", "learning_curves.png", "report.md"):
        assert (out / name).stat().st_size > 0, name
    text = (out / "report.md").read_text()
    assert "**phase2_reg=True, delta=0.1**: BD-rate -10.00 %" in text
    assert "-19.19" in text and "CompressAI" in text


def test_report_on_a_smoke_run_says_why_bd_is_missing(tmp_path):
    root = make_experiment(tmp_path / "smoke", lambdas=LAMBDAS[:2])
    assert main([str(root)]) == 0
    text = (root / "report" / "report.md").read_text()
    assert "No best configuration by BD-rate" in text and "fewer than 4 RD points" in text
    assert "## Best configuration per λ" in text and "| 0.0035 | phase2_reg=True, delta=0.1 |" in text


def test_report_on_an_experiment_with_no_epoch_yet(tmp_path):
    root = tmp_path / "starting"
    write_trial(root, 0, {**BASE_CONFIG, "lmbda": 0.013}, None)
    assert main([str(root), "--select", "best"]) == 0
    assert "No trial has reported a validated epoch yet" in (root / "report" / "report.md").read_text()


def test_cli_missing_dir_exits_2_with_one_line(tmp_path):
    run = subprocess.run([sys.executable, "-m", "analysis.report", str(tmp_path / "nope")],
                         capture_output=True, text=True, cwd=REPO, timeout=60)
    assert run.returncode == 2 and run.stdout == ""
    assert run.stderr.count("\n") == 1 and "not found" in run.stderr


def test_cli_bad_option_exits_2_with_one_line(experiment, capsys):
    assert main([str(experiment), "--select", "worst"]) == 2
    assert capsys.readouterr().err.count("\n") == 1


# --- notebooks (headless, nbclient; each starts a kernel) ----------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize("name", ["rd_curves.ipynb", "hyperparameter_effects.ipynb"])
def test_notebook_executes_headless(name, experiment):
    from analysis.notebooks import execute

    notebook = execute(REPO / "analysis" / "notebooks" / name, experiment, timeout=120)
    outputs = [output for cell in notebook.cells if cell.cell_type == "code" for output in cell.outputs]
    assert not [output for output in outputs if output.output_type == "error"]
    assert any("image/png" in output.get("data", {}) for output in outputs)
