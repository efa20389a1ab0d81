"""analysis.budget: the report's line on why a configuration has no BD-rate and what budget would give one."""

from __future__ import annotations

import math
import re

import numpy as np
import pandas as pd

from analysis.budget import failing_step, section, why_no_bd_rate

LAMBDAS = (0.001, 0.003, 0.009, 0.027)
IMAGES, SEEDS = 6, 2


def _points(rng: np.random.Generator, x_psnr=(30.0, 31.0, 31.5, 31.45)) -> pd.DataFrame:
    """off rises; x's mean PSNR falls 0.05 dB from the third λ to the fourth (rates rise for both)."""
    rows = []
    for name, psnr in (("off", (30.0, 31.0, 32.0, 33.0)), ("x", x_psnr)):
        for seed in range(SEEDS):
            for image in range(IMAGES):
                for lmbda, bpp, quality in zip(LAMBDAS, (0.1, 0.2, 0.4, 0.8), psnr):
                    rows.append({"configuration": name, "is_off": name == "off", "seed": seed, "lmbda": lmbda,
                                 "image": f"i{image}", "bpp": bpp * math.exp(rng.normal(0, 0.01)),
                                 "psnr": quality + rng.normal(0, 0.05)})
    return pd.DataFrame(rows)


def _history(gaps: list[float]) -> pd.DataFrame:
    """x's validation PSNR at the third and fourth λ, epoch by epoch, with the given gap (fourth − third)."""
    rows = []
    for epoch, gap in enumerate(gaps, start=1):
        rows += [{"configuration": "x", "epoch": epoch, "lmbda": LAMBDAS[2], "val_psnr": 31.0, "val_bpp": 0.4},
                 {"configuration": "x", "epoch": epoch, "lmbda": LAMBDAS[3], "val_psnr": 31.0 + gap, "val_bpp": 0.8}]
    return pd.DataFrame(rows)


def test_failing_step_names_the_lambda_pair_and_the_se_of_its_change():
    points = _points(np.random.default_rng(0))
    step = failing_step(points, "x", "psnr")
    assert (step.low, step.high, step.axis) == (LAMBDAS[2], LAMBDAS[3], "psnr")
    x = points[points["configuration"] == "x"]
    change = (x[x["lmbda"] == LAMBDAS[3]].set_index(["seed", "image"])["psnr"]
              - x[x["lmbda"] == LAMBDAS[2]].set_index(["seed", "image"])["psnr"])
    assert step.cells == SEEDS * IMAGES
    assert math.isclose(step.se, change.std() / math.sqrt(len(change)), rel_tol=1e-9)
    assert math.isclose(step.after - step.before, change.mean(), abs_tol=1e-9)
    assert failing_step(points, "off", "psnr") is None


def test_a_growing_validation_gap_is_extrapolated_to_two_standard_errors():
    """The gap grows 0.01 dB per epoch of 50 steps (from −0.05): the steps to 2 SE follow from that rate."""
    points = _points(np.random.default_rng(1))
    gaps = [-0.05 + 0.01 * k for k in range(8)]
    line = why_no_bd_rate(points, _history(gaps), "x", "psnr", steps_per_epoch=50, steps=400)
    step = failing_step(points, "x", "psnr")
    expected = (2 * step.se - gaps[-1]) / (0.01 / 50)
    more = float(re.search(r"about ([\d,]+) more steps", line)[1].replace(",", ""))
    assert math.isclose(more, float(f"{expected:.2g}"), rel_tol=1e-9)
    assert "λ 0.009 to 0.027" in line and "400 steps per λ model" in line and "linear" in line


def test_a_gap_that_does_not_grow_says_more_steps_will_not_do_it():
    points = _points(np.random.default_rng(2))
    line = why_no_bd_rate(points, _history([-0.02, -0.03, -0.02, -0.04, -0.05, -0.05]), "x", "psnr", 50, 300)
    assert "did not grow" in line and "more steps" in line and "--lambdas" in line
    assert "more steps per λ model at that rate" not in line


def test_a_gap_already_clear_on_validation_points_at_the_test_set():
    points = _points(np.random.default_rng(3))
    line = why_no_bd_rate(points, _history([0.2, 0.3, 0.4, 0.5]), "x", "psnr", 50, 200)
    assert "already" in line and "more test images" in line


def test_section_lists_only_configurations_without_a_bd_rate():
    points = _points(np.random.default_rng(4))
    table = pd.DataFrame({"configuration": ["off", "x"], "status": ["reference", "undefined: non-monotone test curve"]})
    text = section(points, _history([0.0, 0.0]), table, "off", "psnr", 50, 100)
    assert text.count("\n- ") == 1 and "`x`" in text and "`off`" not in text
    rising = _points(np.random.default_rng(5), x_psnr=(30.0, 31.0, 31.5, 32.0))
    assert section(rising, _history([0.5, 0.5]), table.assign(status=["reference", "indicative: 2 seeds"]),
                   "off", "psnr", 50, 100) == ""


def test_report_says_why_when_asha_left_only_off(tmp_path_factory, tmp_path):
    """A real evaluated experiment whose every other configuration ASHA stopped: report.md says so in one line."""
    from analysis.report import write_report
    from tests.test_evaluate import copy_experiment, evaluated_experiment_dir

    exp = copy_experiment(evaluated_experiment_dir(tmp_path_factory) / "exp", tmp_path / "exp")
    trials = pd.read_csv(exp / "results.csv")
    others = ~trials["is_off"].astype(bool)
    trials.loc[others, "status"] = "STOPPED"
    trials.loc[others, "stopped_epoch"] = 1
    trials.to_csv(exp / "results.csv", index=False)
    text = (write_report(exp) / "report.md").read_text()
    n = trials.loc[others, "configuration"].nunique()
    assert f"- ASHA stopped every other configuration ({n}, below) before its last epoch" in text
    assert "--scheduler fifo" in text
