"""Steps to quality on constructed learning curves whose crossing steps are known."""
import json
import math

import numpy as np
import pandas as pd
import pytest

from analysis.convergence import (censored_median, experiment_curves, main, quality_table, steps_to_quality,
                                  summarize)


def test_crossing_between_evaluations_is_interpolated():
    # 4 at step 200, 2 at step 300: the line reaches 3 at step 250
    reach = steps_to_quality([100, 200, 300, 400], [5.0, 4.0, 2.0, 1.0], 3.0)
    assert (reach.step, reach.censored, reach.last_step) == (250.0, False, 400.0)
    assert steps_to_quality([300, 100, 200], [2.0, 5.0, 4.0], 3.0).step == 250.0      # order of rows is irrelevant
    assert steps_to_quality([100, 200, 300], [5.0, 3.0, 2.0], 3.0).step == 200.0      # exactly at an evaluation


def test_first_crossing_counts_and_the_first_evaluation_is_an_upper_bound():
    # dips to 2.5 at step 200, back above, then below for good: the first crossing (150)
    assert steps_to_quality([100, 200, 300, 400], [3.5, 2.5, 3.2, 2.0], 3.0).step == 150.0
    assert steps_to_quality([100, 200], [2.0, 1.0], 3.0).step == 100.0


def test_a_curve_that_never_reaches_the_target_is_censored_not_zero():
    reach = steps_to_quality([100, 200, 300], [5.0, 4.0, 3.1], 3.0)
    assert reach.censored and math.isnan(reach.step) and reach.last_step == 300.0
    diverged = steps_to_quality([100, 200, 300], [5.0, float("nan"), float("inf")], 3.0)
    assert diverged.censored
    # a NaN evaluation before the crossing: nothing to interpolate from, its step is the bound
    assert steps_to_quality([100, 200, 300], [5.0, float("nan"), 2.0], 3.0).step == 300.0


def test_censored_median_is_defined_only_while_half_reached():
    assert censored_median([100, 300, math.nan], [False, False, True]) == 300.0
    assert math.isnan(censored_median([100, math.nan, math.nan], [False, True, True]))
    assert censored_median([100, 200, 400, math.nan], [False, False, False, True]) == 300.0


def _curves(time_constant: float, configuration: str, is_off: bool, seeds, lmbda=0.013, noise=0.0,
            steps=np.arange(500, 20_001, 500)):
    """Loss 1 + 4 exp(-step / T) at every evaluation: a configuration with half the time
    constant reaches any loss in exactly half the steps."""
    rng = np.random.default_rng(len(configuration))
    rows = []
    for seed in seeds:
        loss = 1 + 4 * np.exp(-steps / time_constant) + noise * rng.standard_normal(len(steps))
        rows += [{"configuration": configuration, "is_off": is_off, "seed": seed, "lmbda": lmbda, "step": float(s),
                  "val_loss": float(v)} for s, v in zip(steps, loss)]
    return rows


def test_a_configuration_twice_as_fast_shows_a_speedup_of_two_and_a_slower_one_is_censored():
    # off (T = 4000) ends at 1 + 4 exp(-5) at step 20,000; the target is 1 % above: off reaches
    # it at T ln(4 / (target - 1)), "fast" (T = 2000) at half that, "slow" (T = 8000) at twice
    # that, beyond its 20,000 steps: censored.
    curves = pd.DataFrame(_curves(4000, "off", True, [0, 1]) + _curves(2000, "fast", False, [0, 1])
                          + _curves(8000, "slow", False, [0, 1]))
    table = quality_table(curves)
    target = (1 + 4 * math.exp(-5)) * 1.01
    off_steps = 4000 * math.log(4 / (target - 1))
    assert table["target"].to_numpy() == pytest.approx(target)
    # linear interpolation of a convex curve between evaluations 500 steps apart: within 1 %
    assert table[table["configuration"] == "off"]["steps_to_quality"].to_numpy() == pytest.approx(off_steps, rel=0.01)
    fast = table[table["configuration"] == "fast"]
    assert fast["steps_to_quality"].to_numpy() == pytest.approx(off_steps / 2, rel=0.01)
    assert table[table["configuration"] == "slow"]["censored"].all() and 2 * off_steps > 20_000
    summary = summarize(table).set_index("configuration")
    assert summary.loc["fast", "speedup_vs_off"] == pytest.approx(2.0, rel=0.01)
    assert summary.loc["slow", "reached"] == 0 and math.isnan(summary.loc["slow", "median_steps"])


def test_null_identical_configurations_show_no_speedup_beyond_seed_noise():
    # same time constant, 0.3 % evaluation noise: every curve reaches the 1 % margin and the
    # speed-up is 1 within the noise; with no margin the target sits in the noise of off's flat end
    curves = pd.DataFrame(_curves(4000, "off", True, range(5), noise=0.003)
                          + _curves(4000, "same", False, range(5), noise=0.003))
    summary = summarize(quality_table(curves)).set_index("configuration")
    assert summary.loc["same", "reached"] == summary.loc["off", "reached"] == 5
    assert 0.9 < summary.loc["same", "speedup_vs_off"] < 1.1
    no_margin = summarize(quality_table(curves, tolerance=0.0)).set_index("configuration")
    assert no_margin.loc["same", "reached"] < 5


def test_reads_a_search_directory_and_writes_convergence_csv(tmp_path, capsys):
    # the layout search.run writes: params.json and one result.json line per evaluation
    for name, conf, is_off, values in (("trial_a", "off", True, [5.0, 3.0, 2.0]),
                                       ("trial_b", "delta=0.1", False, [4.0, 2.0, 1.5])):
        d = tmp_path / name
        d.mkdir()
        (d / "params.json").write_text(json.dumps({"configuration": conf, "is_off": is_off, "seed": 0,
                                                   "epochs": 3, "lambdas": [0.013]}))
        lines = [json.dumps({"epoch": e + 1, "global_step": 100 * (e + 1), "done": e == 2,
                             "lambda=0.013/val_loss": v}) for e, v in enumerate(values)]
        (d / "result.json").write_text("\n".join(lines) + "\n")
    curves, finished = experiment_curves(tmp_path)
    assert finished.sum() == 3
    assert main([str(tmp_path)]) == 0
    table = pd.read_csv(tmp_path / "convergence.csv").set_index("configuration")
    # target 2.0 x 1.01 = 2.02: off crosses between (200, 3.0) and (300, 2.0), δ between (100, 4.0) and (200, 2.0)
    assert table.loc["off", "steps_to_quality"] == pytest.approx(200 + 0.98 * 100)
    assert table.loc["delta=0.1", "steps_to_quality"] == pytest.approx(100 + 1.98 / 2 * 100)
    assert "delta=0.1" in capsys.readouterr().out
    assert main([str(tmp_path / "missing")]) == 2
