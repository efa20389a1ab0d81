"""Real (small) Ray Tune experiments on CPU: spaces, λ brackets, ASHA, errors, resume."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from spaces import OFFICIAL_LAMBDAS, get_space, list_spaces, registry
from trainable.errors import InputError

ROOT = Path(__file__).resolve().parents[1]
FAST = ["--preset", "cpu-smoke", "--max-epochs", "3", "--grace-epochs", "1", "--steps-per-epoch", "2",
        "--batch-size", "2", "--max-concurrent", "2"]


def test_every_named_space_resolves_and_can_switch_regularizers_off():
    spaces = registry()
    assert {"phase1_tau", "phase2_delta", "lambda", "joint", "baseline", "ablation_tau", "ablation_delta",
            "phase2_design"} <= set(spaces)
    for space in spaces.values():
        assert space.lambdas and all(l in OFFICIAL_LAMBDAS for l in space.lambdas)
        regularizes = any(k in space.searched for k in ("delta", "tau_init", "truncation_fraction"))
        if regularizes:
            assert space.off, f"{space.name} must be able to find 'regularizers off'"
            assert space.off.get("delta", 0) == 0 and space.off.get("truncation_fraction", 0) == 0
    assert get_space("ablation_delta").searched["delta"].values == (0.0, 0.05, 0.1, 0.15)
    assert len(list_spaces()) == len(spaces)


def test_space_files_and_invalid_spaces(tmp_path):
    good = tmp_path / "mine.yaml"
    good.write_text("searched:\n  delta: [0.0, 0.2]\nfixed:\n  phase2_reg: true\nlambdas: [0.013, 0.025]\nregularizers_off:\n  delta: 0.0\n")
    space = get_space(str(good))
    assert space.lambdas == (0.013, 0.025) and space.searched["delta"].values == (0.0, 0.2)
    (tmp_path / "bad.json").write_text('{"searched": {"colour": [1, 2]}}')
    with pytest.raises(InputError, match="unknown parameter 'colour'"):
        get_space(str(tmp_path / "bad.json"))
    (tmp_path / "broken.yaml").write_text("searched: [unclosed")
    with pytest.raises(InputError, match="not valid YAML"):
        get_space(str(tmp_path / "broken.yaml"))
    with pytest.raises(InputError, match="unknown space 'nope'"):
        get_space("nope")


def _search(*args, storage, timeout=600, env=None):
    env = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "-m", "search.run", *args, "--storage-path", str(storage)],
                          cwd=ROOT, capture_output=True, text=True, timeout=timeout, env=env)


def test_asha_grace_covers_the_longest_phase1():
    from ray import tune

    from search.experiment import _grace

    class Args:
        max_epochs, grace_epochs = 20, 2

    space = {"spectral_reg": True, "truncation_epochs": tune.choice([0, 3, 7])}
    assert _grace(Args, space) == 8
    assert _grace(Args, {"spectral_reg": True, "truncation_epochs": tune.grid_search([0, 5])}) == 6
    assert _grace(Args, {"spectral_reg": False, "truncation_epochs": 100}) == 2


@pytest.mark.parametrize("args,message", [
    (["--space", "nope"], "unknown space"),
    (["--space", "phase2_delta", "--num-samples", "0"], "--num-samples must be >= 1"),
    (["--space", "phase2_delta", "--scheduler", "hyperband"], "invalid choice"),
    (["--space", "phase2_delta", "--gpus-per-trial", "-1"], "gpus-per-trial"),
    ([], "--space is required"),
    (["--space", "phase2_delta", "--train-dataset", "/nonexistent/images"], "dataset directory not found"),
])
def test_invalid_search_inputs_fail_with_one_line(tmp_path, args, message):
    r = _search(*args, storage=tmp_path, timeout=120)
    assert r.returncode == 2 and message in r.stderr and r.stderr.count("\n") == 1, r.stderr


@pytest.mark.slow
def test_small_search_brackets_lambdas_asha_stops_trials_and_resume_finishes(tmp_path):
    cache = {"HPCM_TUNE_CACHE": str(tmp_path / "cache")}
    name = "exp"
    args = ["--space", "phase2_delta", "--name", name, "--lambdas", "0.0067", "0.025", *FAST]
    r = _search(*args, storage=tmp_path, env=cache)
    assert r.returncode == 0, r.stderr[-3000:]
    root = tmp_path / name
    table = pd.read_csv(root / "results.csv")
    assert len(table) == 8 and set(table["status"]) == {"TERMINATED"}
    # λ-awareness: each bracket holds only its own λ
    for lmbda in (0.0067, 0.025):
        params = [json.loads(p.read_text()) for p in (root / f"lambda={lmbda}").glob("*/params.json")]
        assert len(params) == 4 and {p["lmbda"] for p in params} == {lmbda}
        assert {p["delta"] for p in params} == {0.0, 0.05, 0.1, 0.15}   # "off" (δ=0) is a candidate
    # ASHA really stopped something (time attribute: our explicit epoch)
    assert (table["epochs_run"] < 3).any() and (table["epochs_run"] == 3).any()
    assert "report:  python -m analysis.report" in r.stdout

    # --resume on a finished experiment retrains nothing
    before = {p: p.stat().st_size for p in root.glob("lambda=*/*/result.json")}
    r = _search(*args, "--resume", storage=tmp_path, env=cache)
    assert r.returncode == 0, r.stderr[-3000:]
    assert {p: p.stat().st_size for p in root.glob("lambda=*/*/result.json")} == before

    # the analysis reads the experiment
    r = subprocess.run([sys.executable, "-m", "analysis.report", str(root)], cwd=ROOT, capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert (root / "report" / "report.md").is_file() and (root / "report" / "rd_curves.png").is_file()
    # ... and so do the notebooks, headless, on this real experiment
    from analysis.notebooks import execute
    for nb in sorted((ROOT / "analysis" / "notebooks").glob("*.ipynb")):
        execute(nb, root, timeout=180)
    # ASHA's rung records were persisted for --resume
    from search.schedulers import PersistentASHA
    state = root / "lambda=0.0067.asha.pkl"
    restored = PersistentASHA(state, time_attr="epoch", metric="val_loss", mode="min", max_t=3, grace_period=1)
    restored._load()
    recorded = set().union(*restored.rung_records())
    assert len(recorded) >= 4


@pytest.mark.slow
@pytest.mark.parametrize("searcher,trials", [("grid", 4), ("optuna", 3)])
def test_killed_driver_resumes_without_retraining(tmp_path, searcher, trials):
    cache = {"HPCM_TUNE_CACHE": str(tmp_path / "cache")}
    args = ["--space", "phase2_delta", "--name", "killed", "--lambdas", "0.013", *FAST,
            "--scheduler", "fifo", "--max-epochs", "4", "--max-concurrent", "1",
            "--searcher", searcher, "--num-samples", "1" if searcher == "grid" else str(trials)]
    env = {**os.environ, **cache}
    proc = subprocess.Popen([sys.executable, "-m", "search.run", *args, "--storage-path", str(tmp_path)],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                            start_new_session=True)
    bracket = tmp_path / "killed" / "lambda=0.013"
    deadline = time.time() + 300
    while time.time() < deadline:   # wait until the first trial has checkpointed two epochs
        done = [p for p in bracket.glob("*/result.json") if p.read_text().count("\n") >= 2]
        if done:
            break
        time.sleep(1)
    assert done, "no trial progressed"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)
    r = _search(*args, "--resume", storage=tmp_path, env=cache)
    assert r.returncode == 0, r.stderr[-3000:]
    table = pd.read_csv(tmp_path / "killed" / "results.csv")
    assert len(table) == trials and (table["epochs_run"] == 4).all()   # the searcher's state survived
    assert (table["config/delta"] == 0.0).sum() >= 1                    # "off" was evaluated
    for path in bracket.glob("*/result.json"):
        epochs = [json.loads(line)["epoch"] for line in path.read_text().splitlines()]
        assert epochs[-1] == 4 and len(epochs) <= 5   # at most one epoch retrained


@pytest.mark.slow
def test_a_killed_trial_worker_resumes_from_its_checkpoint(tmp_path):
    import psutil

    env = {**os.environ, "HPCM_TUNE_CACHE": str(tmp_path / "cache")}
    args = ["--space", "baseline", "--name", "worker", "--lambdas", "0.013", *FAST, "--scheduler", "fifo",
            "--max-epochs", "5", "--storage-path", str(tmp_path)]
    proc = subprocess.Popen([sys.executable, "-m", "search.run", *args], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=env, start_new_session=True)
    bracket = tmp_path / "worker" / "lambda=0.013"
    deadline, killed = time.time() + 300, []
    while time.time() < deadline and not killed:
        if any(p.read_text().count("\n") >= 2 for p in bracket.glob("*/result.json")):
            killed = [p for p in psutil.process_iter(["cmdline"])
                      if "ray::ImplicitFunc.train" in " ".join(p.info["cmdline"] or [])]
            for p in killed:
                p.send_signal(signal.SIGKILL)
        time.sleep(0.5)
    assert killed, "no trial worker found to kill"
    out, _ = proc.communicate(timeout=400)
    assert proc.returncode == 0, out[-3000:]
    table = pd.read_csv(tmp_path / "worker" / "results.csv")
    assert list(table["status"]) == ["TERMINATED"] and list(table["epochs_run"]) == [5]
    (result,) = bracket.glob("*/result.json")
    epochs = [json.loads(line)["epoch"] for line in result.read_text().splitlines()]
    assert epochs[-1] == 5 and epochs[0] == 1
    assert len(epochs) - len(set(epochs)) <= 1   # resumed from the checkpoint: at most one epoch redone
    assert sorted(set(epochs)) == [1, 2, 3, 4, 5]


@pytest.mark.slow
def test_wandb_logs_offline_by_default_and_no_key_is_written(tmp_path):
    secret = "0123456789abcdef0123456789abcdef01234567"
    env = {"HPCM_TUNE_CACHE": str(tmp_path / "cache"), "WANDB_API_KEY": secret}
    env_clean = {k: v for k, v in os.environ.items() if k != "WANDB_MODE"}
    r = subprocess.run([sys.executable, "-m", "search.run", "--space", "baseline", "--name", "wb", "--lambdas", "0.013",
                        *FAST, "--max-epochs", "2", "--wandb", "--storage-path", str(tmp_path)],
                       cwd=ROOT, capture_output=True, text=True, timeout=600, env={**env_clean, **env})
    assert r.returncode == 0, r.stderr[-3000:]
    assert list((tmp_path / "wb").glob("lambda=0.013/*/wandb/offline-run-*")), "no offline W&B run written"
    assert secret not in r.stdout + r.stderr
    for path in (tmp_path / "wb").rglob("*"):
        if path.is_file() and path.stat().st_size < 5_000_000:
            assert secret.encode() not in path.read_bytes(), path
