"""Search: typed config and plan, configuration-level searchers, and real (small) Ray Tune runs on CPU."""
import json
import math
import os
import pickle
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from search.config import SearchConfig
from search.plan import make_plan
from search.points import OffComparison
from search.run import main
from search.searchers import EnumeratedSearch, FidelityAwareOptunaSearch, n_startup_trials
from trainable.cli import run_cli
from trainable.errors import InputError

ROOT = Path(__file__).resolve().parents[1]
LAMBDAS = ["0.0035", "0.0067", "0.013", "0.025"]    # a BD-rate needs 4 points
TINY = ["--preset", "cpu-smoke", "--lambdas", *LAMBDAS, "--steps-per-epoch", "2", "--batch-size", "2",
        "--patch-size", "64", "--max-concurrent", "1", "--init-weights", "none"]
# δ sampled from a range narrower than the rounding: every sample is the configuration δ = 0.1,
# so Optuna keeps proposing configurations that were already trained. lr 1e-7 barely trains:
# ASHA stops it at its first rung.
NARROW = """searched:
  delta: {kind: uniform, low: 0.1, high: 0.1004}
  learning_rate: [0.003, 0.0000001]
fixed: {phase2_reg: true, spectral_reg: false}
"""


def _cli(argv: list[str]) -> int:
    """``python -m search.run`` in-process (argparse exits on usage errors)."""
    try:
        return run_cli(main, argv)
    except SystemExit as exc:
        return exc.code


def plan_for(space, **overrides):
    return make_plan(SearchConfig.create(str(space), "cpu-smoke", **overrides), verify_data=False)


def _search(*args, storage, timeout=600, env=None):
    env = {**os.environ, "HPCM_TUNE_CACHE": str(Path(storage) / "cache"), **(env or {})}
    return subprocess.run([sys.executable, "-m", "search.run", *args, "--storage-path", str(storage)],
                          cwd=ROOT, capture_output=True, text=True, timeout=timeout, env=env)


def _env(process) -> str | None:
    try:
        return process.environ().get("HPCM_TUNE_CACHE")
    except Exception:   # gone, or not ours to read
        return None


def _epochs(result_json: Path) -> list[int]:
    return [json.loads(line)["epoch"] for line in result_json.read_text().splitlines()]


# ---------------------------------------------------------------------------- before Ray

@pytest.mark.parametrize("args,message", [
    (["--space", "nope"], "unknown space"),
    (["--space", "phase2_delta", "--num-samples", "0"], "--num-samples must be >= 1"),
    (["--space", "phase2_delta", "--seeds", "0"], "--seeds must be >= 1"),
    (["--space", "phase2_delta", "--scheduler", "hyperband"], "invalid choice"),
    (["--space", "phase2_delta", "--gpus-per-trial", "-1"], "gpus-per-trial"),
    (["--space", "phase2_delta", "--lambdas", "0.0035", "0.0067", "0.01", "8.7"], "not on the mse scale"),
    (["--space", "phase2_delta", "--lambdas", "0.0067", "0.025"], "a BD-rate needs at least 4 points per curve"),
    (["--space", "phase2_delta_ms_ssim"], "needs images of at least 161 px per side; --patch-size is 128: pass --patch-size 192 or more"),
    (["--space", "phase2_delta", "--model", "HPCM_Nope"], "unknown model 'HPCM_Nope'"),
    (["--space", "joint", "--searcher", "grid"], "--searcher grid needs a space of choices only"),
    ([], "--space is required"),
    (["--space", "phase2_delta", "--train-dataset", "/nonexistent/images"], "dataset directory not found"),
])
def test_invalid_search_inputs_fail_with_one_line_before_ray_starts(tmp_path, capsys, args, message):
    import ray

    code = _cli([*args, "--storage-path", str(tmp_path / "runs")])
    err = capsys.readouterr().err
    assert code == 2 and message in err and err.count("\n") == 1, err
    assert not ray.is_initialized() and not (tmp_path / "runs").exists()


MODELS = """searched: {delta: [0.0, 0.1], model: [HPCM_Tiny, HPCM_Base]}
fixed: {phase2_reg: true}
"""


@pytest.mark.parametrize("setup,args,message", [
    (None, ["--name", "a/b"], "--name must be one folder name"),
    (None, ["--name", ".."], "--name must be one folder name"),
    ("file", [], "is a file; give a folder"),
    ("under_file", [], "cannot be created"),
    (None, ["--lambdas", "0.0067", "0.025"], "a BD-rate needs at least 4 points per curve"),
    ("quoted_bool", [], "phase2_reg: 'false' is a str, expected a boolean (true or false, unquoted)"),
    ("string_number", [], "delta: 'abc' is a str, expected a number (unquoted)"),
    ("models", [], "searches model over HPCM_Base, HPCM_Tiny, but preset cpu-smoke's warm start fits HPCM_Tiny only"),
])
def test_the_dry_run_refuses_what_the_real_run_refuses(tmp_path, capsys, setup, args, message):
    storage, space = tmp_path / "runs", "phase2_delta"
    if setup in ("file", "under_file"):
        storage.write_text("not a folder")
        storage = storage / "deeper" if setup == "under_file" else storage
    texts = {"quoted_bool": 'searched: {delta: [0.0, 0.1]}\nfixed: {phase2_reg: "false"}\n',
             "string_number": "searched: {delta: [abc, 0.1]}\nfixed: {phase2_reg: true}\n", "models": MODELS}
    if setup in texts:
        space = tmp_path / f"{setup}.yaml"
        space.write_text(texts[setup])
    for mode in (["--dry-run"], []):              # the same one line, dry run or not, before Ray
        code = _cli(["--space", str(space), "--preset", "cpu-smoke", *args, "--storage-path", str(storage), *mode])
        err = capsys.readouterr().err
        assert code == 2 and message in err and err.count("\n") == 1, err
    assert not any(p.is_dir() for p in tmp_path.iterdir())


def test_a_searched_model_starts_from_scratch_everywhere_or_from_a_file_that_fits_each(tmp_path, capsys):
    space = tmp_path / "models.yaml"
    space.write_text(MODELS)
    code = _cli(["--space", str(space), "--preset", "cpu-smoke", "--init-weights", "none", "--dry-run",
                 "--storage-path", str(tmp_path / "runs")])
    assert code == 0 and "warm start: none (from scratch)" in capsys.readouterr().out
    from trainable.pretrained import warm_start_path

    shutil.copy(warm_start_path(), tmp_path / "tiny.pth.tar")        # a user's file: checked against each model
    code = _cli(["--space", str(space), "--preset", "cpu-smoke", "--init-weights", str(tmp_path / "tiny.pth.tar"),
                 "--dry-run", "--storage-path", str(tmp_path / "runs")])
    err = capsys.readouterr().err
    assert code == 2 and "does not fit model HPCM_Base" in err and err.count("\n") == 1, err


def test_a_bad_space_file_value_fails_before_any_trial(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("searched:\n  delta: [-1, 0.1]\nfixed: {phase2_reg: true}\n")
    code = _cli(["--space", str(bad), "--storage-path", str(tmp_path / "runs")])
    err = capsys.readouterr().err
    assert code == 2 and err == "error: space 'bad': delta=-1: delta must be >= 0, got -1\n"
    assert not (tmp_path / "runs").exists()


def test_config_and_plan_resolve_presets_model_and_phase1_aware_grace(tmp_path):
    cfg = SearchConfig.create("phase1_tau", "cpu-smoke", max_epochs=12, grace_epochs=2, seeds=2, seed=5)
    plan = make_plan(cfg, verify_data=False)
    assert plan.base.model_name == "HPCM_Tiny" and plan.searcher == "optuna" and plan.scheduler == "asha"
    assert plan.grace == 2 + 1 and plan.seeds == (5, 6)   # longest truncation 1/6 · 12 = 2 epochs, + 1
    assert plan.record()["space"]["name"] == "phase1_tau" and plan.record()["off"] == "off"
    grid = plan_for("phase2_delta")
    assert grid.searcher == "grid" and grid.scheduler == "fifo" and grid.grace == grid.config.grace_epochs
    params = grid.trial_params(grid.configurations[1], seed=3)
    assert params["configuration"] == "delta=0.05" and params["seed"] == 3 and params["lambdas"] == list(grid.lambdas)
    assert "lmbda" not in params and "save_path" not in params
    fixed = tmp_path / "fixed.yaml"
    fixed.write_text("searched: {delta: [0.0, 0.1]}\nfixed: {phase2_reg: true, model: HPCM_Base}\n")
    assert plan_for(fixed).base.model_name == "HPCM_Base"
    with pytest.raises(Exception, match="conflicts with space"):
        plan_for(fixed, model="HPCM_Tiny")


def test_a_whole_run_of_phase1_is_refused_and_a_space_with_3_lambdas_too(tmp_path, capsys):
    no_length = tmp_path / "no_length.yaml"     # Phase 1 on, truncation_epochs left at its default of 100
    no_length.write_text("searched: {tau_init: [0.05, 0.1]}\nfixed: {spectral_reg: true}\n")
    three = tmp_path / "three.yaml"
    three.write_text("searched: {delta: [0.0, 0.1]}\nfixed: {phase2_reg: true}\nlambdas: [0.0035, 0.013, 0.025]\n")
    for space, message in [(no_length, "Phase 1 lasts 100 epochs (truncation_epochs) of a 12-epoch run"),
                           (three, "3 λ value(s) from space three (0.0035, 0.013, 0.025): a BD-rate needs at least")]:
        code = _cli(["--space", str(space), "--storage-path", str(tmp_path / "runs")])
        err = capsys.readouterr().err
        assert code == 2 and message in err and err.count("\n") == 1, err
    assert not (tmp_path / "runs").exists()
    fraction = tmp_path / "fraction.yaml"       # a share of the run is always shorter than the run
    fraction.write_text("searched: {tau_init: [0.05, 0.1]}\nfixed: {spectral_reg: true, truncation_fraction: 0.99}\n")
    assert plan_for(fraction).space.longest_truncation(plan_for(fraction).base, 12) == 11


def test_a_preset_that_measures_no_bd_rate_may_have_fewer_than_4_lambdas(monkeypatch):
    from search.plan import check_bd_rate
    from search.presets import PRESETS

    three = {**PRESETS["cpu-smoke"], "lambdas": (0.0015, 0.0045, 0.013)}
    monkeypatch.setitem(PRESETS, "three", three)
    with pytest.raises(InputError, match="3 λ value.s. from preset three .* a BD-rate needs at least 4"):
        check_bd_rate(make_plan(SearchConfig.create("phase2_delta", "three"), verify_data=False))
    monkeypatch.setitem(PRESETS, "three", {**three, "bd_rate": False})     # e.g. a steps-to-quality study
    plan = make_plan(SearchConfig.create("phase2_delta", "three"), verify_data=False)
    check_bd_rate(plan)
    assert plan.lambdas == (0.0015, 0.0045, 0.013)


def test_a_preset_key_nothing_reads_is_refused_not_ignored(monkeypatch):
    from search.presets import PRESETS

    monkeypatch.setitem(PRESETS, "typo", {**PRESETS["cpu-smoke"], "max_epoch": 50})   # max_epochs misspelt
    with pytest.raises(InputError, match="preset 'typo' sets unknown settings: max_epoch"):
        SearchConfig.create("phase2_delta", "typo")
    for name in PRESETS:            # every shipped preset passes
        if name != "typo":
            SearchConfig.create("phase2_delta", name, init_weights="none")


def test_lambdas_come_from_the_flag_else_the_space_else_the_preset_on_the_space_scale(tmp_path):
    from spaces import MS_SSIM_LAMBDAS, OFFICIAL_LAMBDAS
    from search.presets import PRESETS

    preset = tuple(PRESETS["cpu-smoke"]["lambdas"])
    own = tmp_path / "own.yaml"
    own.write_text("searched: {delta: [0.0, 0.1]}\nfixed: {phase2_reg: true}\n"
                   "lambdas: [0.0018, 0.0035, 0.0067, 0.013, 0.025]\n")
    assert plan_for(own).lambdas == (0.0018, 0.0035, 0.0067, 0.013, 0.025) != preset   # the space's own win
    assert plan_for("phase2_delta").lambdas == preset                                   # no own λs: the preset's
    gpu = make_plan(SearchConfig.create("phase2_delta", "gpu-short"), verify_data=False)
    assert gpu.lambdas == OFFICIAL_LAMBDAS and gpu.lambdas_from == "mse default"         # preset without λs
    flag = (0.001, 0.002, 0.004, 0.008)
    assert plan_for(own, lambdas=flag).lambdas == flag and plan_for(own, lambdas=flag).lambdas_from == "--lambdas"
    # MS-SSIM space under cpu-smoke: the preset's MSE λs do not apply (and are not blamed)
    ms = plan_for("phase2_delta_ms_ssim", patch_size=192)
    assert ms.lambdas == MS_SSIM_LAMBDAS and ms.base.metric == "ms-ssim"
    assert ms.record()["lambdas"] == list(MS_SSIM_LAMBDAS)


def test_val_dataset_flag_the_deprecated_alias_and_the_recorded_datasets(tmp_path, capsys):
    from search.run import build_parser, config_from_args
    from trainable.data import sample_dataset_dir

    val = tmp_path / "val"
    shutil.copytree(sample_dataset_dir("val"), val)
    config = config_from_args(build_parser().parse_args(["--space", "phase2_delta", "--test-dataset", str(val)]))
    note = capsys.readouterr().err
    assert config.val_dataset == str(val) and note.count("\n") == 1 and "deprecated" in note and "--val-dataset" in note
    assert config_from_args(build_parser().parse_args(["--space", "phase2_delta", "--val-dataset", str(val)])) == config
    assert capsys.readouterr().err == ""
    plan = make_plan(config)
    assert plan.base.test_dataset == str(val.resolve())          # the trainer validates on it
    datasets = plan.record()["datasets"]
    assert datasets == {"train": str(sample_dataset_dir("train").resolve()), "val": str(val.resolve()),
                        "test": str(sample_dataset_dir("test").resolve())}
    own_train = make_plan(SearchConfig.create("phase2_delta", "cpu-smoke", train_dataset=str(val)))
    assert own_train.datasets["test"] is None                     # a test set is then given to analysis.evaluate


def test_the_builtin_test_split_cannot_be_the_validation_set(tmp_path, capsys):
    from trainable.data import sample_dataset_dir

    test = sample_dataset_dir("test")
    copy = tmp_path / "renamed"                                   # the same images under other names
    copy.mkdir()
    for i, path in enumerate(sorted(test.glob("*.png"))):
        shutil.copy(path, copy / f"img{i}.png")
    for folder in (test, copy):
        code = _cli(["--space", "phase2_delta", "--val-dataset", str(folder), "--storage-path", str(tmp_path / "runs")])
        err = capsys.readouterr().err
        assert code == 2 and "built-in test split" in err and err.count("\n") == 1, err


def test_resume_with_changed_settings_is_refused_and_keeps_experiment_json(tmp_path, capsys):
    from search.experiment import EXPERIMENT_FILE

    space = tmp_path / "two.yaml"
    space.write_text("searched: {delta: [0.0, 0.1]}\nfixed: {phase2_reg: true}\n")
    storage = tmp_path / "runs"
    first = plan_for(space, name="exp", storage_path=str(storage), max_epochs=3)
    (storage / "exp").mkdir(parents=True)
    stored = json.dumps(first.record(), indent=2)                 # as an earlier run left it
    (storage / "exp" / EXPERIMENT_FILE).write_text(stored)
    code = _cli(["--space", str(space), "--name", "exp", "--storage-path", str(storage), "--resume",
                 "--max-epochs", "5", "--seeds", "2", "--lambdas", *LAMBDAS])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1, err
    assert "max_epochs 3 -> 5" in err and "seeds 1 -> 2" in err and "lambdas" in err
    assert (storage / "exp" / EXPERIMENT_FILE).read_text() == stored


@pytest.mark.slow                                   # starts Ray (~15 s idle, over a minute on a busy machine)
@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="needs a machine without a GPU")
def test_a_trial_that_fits_no_node_is_refused_once_ray_is_up(tmp_path):
    r = _search("--space", "baseline", "--name", "gpu", *TINY, "--max-epochs", "1", "--gpus-per-trial", "1",
                storage=tmp_path, timeout=300)
    assert r.returncode == 2, r.stdout[-2000:] + r.stderr[-2000:]
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("error: no node of the Ray cluster can run a trial, which asks for GPU 1 (largest node: 0)")
    assert not (tmp_path / "gpu" / "experiment.json").exists()   # nothing recorded: the same command can be rerun


# ---------------------------------------------------------------------------- searchers, without Ray running

def _finish(searcher, trial_id, rd_score, epoch):
    searcher.on_trial_complete(trial_id, {"epoch": epoch, "rd_score": rd_score})


def test_enumerated_search_gives_every_configuration_once_per_seed_off_first():
    plan = plan_for("phase2_design", seeds=2)
    searcher = EnumeratedSearch(plan)
    handed = []
    while (params := searcher.suggest(f"t{len(handed)}")) != "FINISHED":
        handed.append((params["configuration"], params["seed"]))
    assert handed[:2] == [("off", 0), ("off", 1)]
    assert len(handed) == 2 * 29 == len(set(handed))     # joint's sign is inert: 29 configurations


def test_optuna_search_answers_seen_configurations_without_training_them(tmp_path):
    space = tmp_path / "narrow.yaml"
    space.write_text(NARROW)
    plan = plan_for(space, num_samples=6, seeds=2, max_epochs=3)
    searcher = FidelityAwareOptunaSearch(plan)
    assert searcher.study.sampler._n_startup_trials == n_startup_trials(6) == 2
    trained, n = [], 0
    while True:
        params = searcher.suggest(f"t{n}")
        if params is None or params == "FINISHED":
            break
        trained.append((params["configuration"], params["seed"]))
        # lr 1e-7 is "stopped by ASHA" at epoch 1 for seed 1: the configuration is pruned
        slow = params["learning_rate"] < 1e-3
        _finish(searcher, f"t{n}", 5.0 if slow else 4.0 - 0.1 * params["seed"], 1 if slow and params["seed"] else 3)
        n += 1
    assert params == "FINISHED"                                  # the space is exhausted, not the budget
    ids = [c for c, _ in trained]
    assert ids[:2] == ["off", "off"] and len(trained) == 3 * 2 == len(set(trained))
    states = [t.state.name for t in searcher.study.trials]
    values = [t.value for t in searcher.study.trials if t.state.name == "COMPLETE"]
    assert searcher.duplicates > 0 and len(states) > 3            # duplicates asked, answered, not trained
    assert set(values) == {3.95} and "PRUNED" in states           # mean over seeds; ASHA-stopped → pruned
    restored = FidelityAwareOptunaSearch(plan)
    restored.set_state(pickle.loads(pickle.dumps(searcher.get_state())))
    assert restored.judged == searcher.judged and len(restored.study.trials) == len(states)


def test_off_comparison_writes_points_and_reports_bd_rate_vs_off(tmp_path):
    lambdas = [0.0035, 0.0067, 0.013, 0.025]
    compare = OffComparison(str(tmp_path))

    def metrics(rate_factor):
        out = {"epoch": 2}
        for i, lmbda in enumerate(lambdas):
            out[f"lambda={lmbda:g}/val_bpp"] = 0.2 * (i + 1) * rate_factor
            out[f"lambda={lmbda:g}/val_psnr"] = 25.0 + 2 * i
        return out

    params = {"configuration": "delta=0.1", "is_off": False, "seed": 0, "lambdas": lambdas, "metric": "mse"}
    assert compare(params, metrics(0.9)) == {}                   # off's epoch-2 points do not exist yet
    assert compare({**params, "configuration": "off", "is_off": True}, metrics(1.0)) == {"bd_rate_vs_off": 0.0}
    bd = compare(params, metrics(0.9))["bd_rate_vs_off"]
    assert bd == pytest.approx(-10.0, abs=0.01)                  # 10 % fewer bits at equal PSNR
    assert (tmp_path / "points" / "seed=0" / "epoch=2" / "off.json").is_file()
    two = {**params, "seed": 1, "lambdas": lambdas[:2]}              # 2 λs: BD-rate undefined, reported as NaN
    compare({**two, "configuration": "off", "is_off": True}, metrics(1.0))
    assert math.isnan(compare(two, metrics(0.9))["bd_rate_vs_off"])


def test_asha_never_stops_off_and_still_judges_the_others_against_it(tmp_path):
    from ray.tune.experiment import Trial
    from ray.tune.schedulers import TrialScheduler

    from search.schedulers import PersistentASHA

    asha = PersistentASHA(tmp_path / "asha.pkl", time_attr="epoch", metric="rd_score", mode="min", max_t=4,
                          grace_period=1, reduction_factor=2)
    names, scores = ("a", "b", "off", "c", "d"), (1.0, 2.0, 3.0, 2.5, 2.1)
    trials = {n: Trial("t", config={"configuration": n, "is_off": n == "off"}, stub=True) for n in names}
    for trial in trials.values():
        asha.on_trial_add(None, trial)
    decision = {n: asha.on_trial_result(None, trials[n], {"epoch": 1, "rd_score": s}) for n, s in zip(names, scores)}
    # off arrives third and worst at the first rung: ASHA (median cutoff of a, b) would stop it
    assert decision["off"] == TrialScheduler.CONTINUE
    assert decision["b"] == decision["c"] == TrialScheduler.STOP
    # off's 3.0 is in the rung: d (2.1) passes the median of {1, 2, 3, 2.5} = 2.25, not that of {1, 2, 2.5} = 2
    assert trials["off"].trial_id in asha.rung_records()[-1] and decision["d"] == TrialScheduler.CONTINUE
    later = asha.on_trial_result(None, trials["off"], {"epoch": 2, "rd_score": 9.0})   # worst at the next rung too
    assert later == TrialScheduler.CONTINUE
    assert asha.on_trial_result(None, trials["a"], {"epoch": 2, "rd_score": 1.0}) == TrialScheduler.CONTINUE


# ---------------------------------------------------------------------------- real Ray Tune runs

@pytest.mark.slow
def test_optuna_asha_search_trains_whole_curves_skips_duplicates_and_flags_stopped(tmp_path):
    space = tmp_path / "narrow.yaml"
    space.write_text(NARROW)
    secret = "0123456789abcdef0123456789abcdef01234567"
    env = {k: v for k, v in os.environ.items() if k != "WANDB_MODE"}
    env["WANDB_API_KEY"] = secret
    r = subprocess.run([sys.executable, "-m", "search.run", "--space", str(space), "--name", "opt", *TINY,
                        "--num-samples", "5", "--max-epochs", "2", "--grace-epochs", "1", "--scheduler", "asha",
                        "--wandb", "--storage-path", str(tmp_path)], cwd=ROOT, capture_output=True, text=True,
                       timeout=600, env={**env, "HPCM_TUNE_CACHE": str(tmp_path / "cache")})
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    assert r.stdout.strip().splitlines()[-1] == "0 of 3 trials errored"
    root = tmp_path / "opt"
    table = pd.read_csv(root / "results.csv")
    # 3 distinct configurations however often Optuna proposed δ = 0.1: none trained twice
    assert sorted(table["configuration"]) == sorted({"off", "delta=0.1,learning_rate=0.003",
                                                     "delta=0.1,learning_rate=1e-07"})
    for lmbda in map(float, LAMBDAS):                            # every configuration has all K λ points
        assert table[f"lambda={lmbda}/val_bpp"].notna().all() and table[f"lambda={lmbda}/val_psnr"].notna().all()
    slow = table.set_index("configuration").loc["delta=0.1,learning_rate=1e-07"]
    assert slow["status"] == "STOPPED" and slow["stopped_epoch"] == slow["epochs_run"] == 1
    assert set(table.loc[table["status"] != "STOPPED", "epochs_run"]) == {2}
    assert table.loc[table["is_off"], "bd_rate_vs_off"].tolist() == [0.0]
    assert (root / "points" / "seed=0" / "epoch=1" / "off.json").is_file()
    record = json.loads((root / "experiment.json").read_text())
    assert record["lambdas"] == list(map(float, LAMBDAS)) and record["searcher"] == "optuna" and record["seeds"] == 1
    (state,) = root.glob("searcher-state-*.pkl")
    study = pickle.loads(state.read_bytes())["study"]
    assert "PRUNED" in {t.state.name for t in study.trials} and len(study.trials) > 3
    # W&B: one offline run per trial, per-λ keys, no API key anywhere
    runs = list(root.glob("trial_*/wandb/offline-run-*"))
    assert len(runs) == 3
    assert secret not in r.stdout + r.stderr
    for path in root.rglob("*"):
        if path.is_file() and path.stat().st_size < 5_000_000:
            assert secret.encode() not in path.read_bytes(), path


@pytest.mark.slow
def test_killed_driver_resumes_without_retraining(tmp_path):
    space = tmp_path / "two.yaml"
    space.write_text("searched: {delta: [0.0, 0.1]}\nfixed: {phase2_reg: true}\n")
    args = ["--space", str(space), "--name", "killed", *TINY, "--max-epochs", "3"]
    env = {**os.environ, "HPCM_TUNE_CACHE": str(tmp_path / "cache")}
    proc = subprocess.Popen([sys.executable, "-m", "search.run", *args, "--storage-path", str(tmp_path)],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                            start_new_session=True)
    root = tmp_path / "killed"
    deadline, done = time.time() + 300, []
    while time.time() < deadline and not done:   # kill once the first trial has checkpointed two epochs
        done = [p for p in root.glob("trial_*/result.json") if p.read_text().count("\n") >= 2]
        time.sleep(0.5)
    assert done, "no trial progressed"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)
    r = _search(*args, "--resume", storage=tmp_path)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    table = pd.read_csv(root / "results.csv")
    assert sorted(table["configuration"]) == ["delta=0.1", "off"]
    assert (table["status"] == "TERMINATED").all() and (table["epochs_run"] == 3).all()
    for path in root.glob("trial_*/result.json"):
        epochs = _epochs(path)
        assert epochs[-1] == 3 and len(epochs) <= 4   # at most one epoch retrained
    assert len(list(root.glob("trial_*"))) == 2     # the searcher's state survived: nothing handed out twice


@pytest.mark.slow
def test_a_killed_trial_worker_resumes_from_its_checkpoint(tmp_path):
    import psutil

    env_mark = str(tmp_path / "cache")
    env = {**os.environ, "HPCM_TUNE_CACHE": env_mark}
    args = ["--space", "baseline", "--name", "worker", *TINY, "--max-epochs", "4", "--storage-path", str(tmp_path)]
    proc = subprocess.Popen([sys.executable, "-m", "search.run", *args], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=env, start_new_session=True)
    root = tmp_path / "worker"
    deadline, killed = time.time() + 300, []
    while time.time() < deadline and not killed:
        if any(p.read_text().count("\n") >= 2 for p in root.glob("trial_*/result.json")):
            killed = [p for p in psutil.process_iter(["cmdline"])   # this test's trial workers only
                      if "ray::ImplicitFunc.train" in " ".join(p.info["cmdline"] or []) and _env(p) == env_mark]
            for p in killed:
                p.send_signal(signal.SIGKILL)
        time.sleep(0.5)
    assert killed, "no trial worker found to kill"
    out, _ = proc.communicate(timeout=400)
    assert proc.returncode == 0, out[-3000:]
    table = pd.read_csv(root / "results.csv")
    assert list(table["status"]) == ["TERMINATED"] and list(table["epochs_run"]) == [4]
    (result,) = root.glob("trial_*/result.json")
    epochs = _epochs(result)
    assert sorted(set(epochs)) == [1, 2, 3, 4] and len(epochs) - len(set(epochs)) <= 1


@pytest.mark.slow
def test_an_errored_trial_makes_the_search_exit_non_zero(tmp_path):
    # lr 1e10 passes every check but the loss becomes non-finite in the first epoch
    r = _search("--space", "baseline", "--name", "err", *TINY, "--max-epochs", "2", "--learning-rate", "1e10",
                "--max-failures", "0", storage=tmp_path)
    assert r.returncode == 1, r.stdout[-2000:] + r.stderr[-2000:]
    last = r.stdout.strip().splitlines()[-1]
    assert last.startswith("1 of 1 trials errored; messages:") and str(tmp_path / "err" / "results.csv") in last
    table = pd.read_csv(tmp_path / "err" / "results.csv")
    assert list(table["status"]) == ["ERROR"] and "non-finite loss" in table["error"][0]
    assert "Ray dashboard: http://127.0.0.1:" in r.stdout and "ray get-auth-token" in r.stdout   # local only


def test_sigterm_reaches_tunes_graceful_stop_and_a_second_signal_aborts():
    from search.interrupt import StopSignals

    calls = []
    previous = signal.signal(signal.SIGUSR1, lambda signum, frame: calls.append(signum))   # Tune's, during fit()
    before = signal.getsignal(signal.SIGTERM)     # SIG_DFL, or Ray's own once a test in this process ran ray.init
    try:
        with StopSignals() as stop:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.1)
            assert stop.received == signal.SIGTERM and calls == [signal.SIGTERM]
            with pytest.raises(KeyboardInterrupt):
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(0.1)
        assert signal.getsignal(signal.SIGTERM) == before and "TUNE_DISABLE_SIGINT_HANDLER" not in os.environ
    finally:
        signal.signal(signal.SIGUSR1, previous)


@pytest.mark.slow
def test_ctrl_c_is_an_interruption_recorded_refused_by_analysis_and_resumable(tmp_path):
    signum = signal.SIGINT
    space = tmp_path / "two.yaml"
    space.write_text("searched: {delta: [0.0, 0.1]}\nfixed: {phase2_reg: true}\n")
    args = ["--space", str(space), "--name", "int", *TINY, "--max-epochs", "3", "--storage-path", str(tmp_path)]
    env = {**os.environ, "HPCM_TUNE_CACHE": str(tmp_path / "cache")}
    proc = subprocess.Popen([sys.executable, "-m", "search.run", *args], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)
    root = tmp_path / "int"
    deadline, started = time.time() + 300, []
    while time.time() < deadline and not started:      # the signal once the first trial has reported an epoch
        started = [p for p in root.glob("trial_*/result.json") if p.read_text().count("\n") >= 1]
        time.sleep(0.3)
    assert started, "no trial progressed"
    proc.send_signal(signum)                          # the driver only, as `kill` or a cluster scheduler does
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 128 + signum, out[-2000:] + err[-3000:]
    last = err.strip().splitlines()[-1]
    command = f"python -m search.run {' '.join(args)} --resume"
    assert last.startswith(f"interrupted by {signal.Signals(signum).name}: ") and last.endswith(command), last
    assert "Tuner.restore" not in out + err and "next:" not in out and "stopped early by ASHA" in out
    table = pd.read_csv(root / "results.csv")
    assert "INTERRUPTED" in set(table["status"]) and "STOPPED" not in set(table["status"])
    assert json.loads((root / "experiment.json").read_text())["status"] == "interrupted"
    for tool in ("analysis.evaluate", "analysis.report"):       # unfinished trials are not results
        r = subprocess.run([sys.executable, "-m", tool, str(root)], cwd=ROOT, capture_output=True, text=True, env=env)
        assert r.returncode == 2 and r.stderr.count("\n") == 1 and "was interrupted" in r.stderr, r.stderr
        assert command in r.stderr and not (root / "evaluation").exists() and not (root / "report").exists()
    r = subprocess.run([sys.executable, *shlex.split(command)[1:]], cwd=ROOT, capture_output=True, text=True,
                       env=env, timeout=600)                   # the printed command, as the user runs it
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    table = pd.read_csv(root / "results.csv")
    assert sorted(table["configuration"]) == ["delta=0.1", "off"] and (table["status"] == "TERMINATED").all()
    assert json.loads((root / "experiment.json").read_text())["status"] == "finished"
