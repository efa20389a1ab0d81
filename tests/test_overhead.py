"""The dry run's per-trial overhead: its arithmetic, and its constants against the measured trial they come from."""
import json
from pathlib import Path

import pytest

from search.overhead import START_SECONDS, trial_overhead

ROOT = Path(__file__).resolve().parents[1]


def test_checkpoints_are_counted_every_n_epochs_and_after_the_last():
    one = trial_overhead(12, 1, 1, 1_000_000, 0).checkpoint_s          # 12 checkpoints of one 1 MB model
    assert trial_overhead(12, 5, 4, 1_000_000, 0).checkpoint_s == pytest.approx(one / 12 * 3 * 4)   # epochs 5, 10, 12
    assert trial_overhead(10, 5, 1, 2_000_000, 0).checkpoint_s == pytest.approx(one / 12 * 2 * 2)   # epochs 5, 10
    coded = trial_overhead(1, 1, 3, 0, 2_000_000)
    assert coded.real_bpp_s == pytest.approx(2 * trial_overhead(1, 1, 3, 0, 1_000_000).real_bpp_s)
    assert coded.seconds == pytest.approx(START_SECONDS + coded.real_bpp_s)


def test_the_constants_reproduce_the_measured_cpu_smoke_trial():
    measured = json.loads((ROOT / "benchmarks" / "results" / "demo_trial_profile.json").read_text())["result"]
    sections = measured["sections_cpu_s"]
    from search.config import SearchConfig
    from search.cost import plan_cost
    from search.plan import make_plan

    plan = make_plan(SearchConfig.create("phase2_delta", "cpu-smoke"))       # the measured trial's settings
    cost = plan_cost(plan)
    assert (plan.config.max_epochs, len(plan.lambdas)) == (measured["epochs"], len(measured["lambdas"]))
    overhead = trial_overhead(plan.config.max_epochs, plan.config.checkpoint_every, len(plan.lambdas),
                              cost.models["HPCM_Tiny"].checkpoint_bytes, cost.val_pixels)
    assert overhead.checkpoint_s == pytest.approx(sections["checkpoints"], rel=0.02)
    assert overhead.real_bpp_s == pytest.approx(sections["real_bpp"], rel=0.02)
    timed = sum(v for k, v in sections.items() if k != "predictability")      # the fit runs inside validation
    unaccounted = measured["cpu_s"] - timed                                   # set-up inside the trial
    assert START_SECONDS == pytest.approx(2.9 + unaccounted, abs=0.1)


def test_the_cpu_smoke_dry_run_totals_the_measured_trials_within_30_percent(capsys):
    """Per-step CPU cost does not shrink with the crop as pixels do: the scaled default priced the
    demo at ~0.56x of its measured trials; the dry run must price what was measured."""
    measured = json.loads((ROOT / "benchmarks" / "results" / "demo_trial_profile.json").read_text())["result"]
    from search.run import main

    assert main(["--space", "phase2_delta", "--preset", "cpu-smoke", "--dry-run"]) == 0
    total = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("total:"))
    planned = float(total.split()[1])                                   # CPU-hours
    trials = 4                                                          # phase2_delta's grid at one seed
    real = trials * (measured["cpu_s"] + 2.9) / 3600                    # whole trial + Tune's start-up
    assert planned == pytest.approx(real, rel=0.3)
