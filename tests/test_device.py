"""A GPU trial never trains on the CPU: CUDA problems are one line naming the cause, and fail the search."""
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch

from trainable import device as device_module
from trainable.device import cuda_problem, describe, resolve_device
from trainable.errors import InputError, TrainingError

ROOT = Path(__file__).resolve().parents[1]
needs_no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="checks the machine without usable CUDA")


@needs_no_cuda
def test_the_cuda_problem_names_the_torch_build_and_the_driver_error():
    problem = cuda_problem()
    assert "\n" not in problem
    if torch.version.cuda is None:
        assert "CPU-only build" in problem
    else:
        assert f"built for CUDA {torch.version.cuda}" in problem and "torch.cuda.is_available()=False" in problem
        assert "NVIDIA driver" in problem
    with pytest.raises(TrainingError, match="device cuda:0 requested, but torch"):
        resolve_device("cuda:0")
    assert resolve_device("auto") == torch.device("cpu")
    assert describe(torch.device("cpu")).startswith("cpu (")


@needs_no_cuda
def test_default_preset_refuses_a_gpu_that_torch_cannot_use(monkeypatch):
    from search.presets import default_preset

    if not device_module.gpu_present():
        assert default_preset() == "cpu-smoke"
    monkeypatch.setattr(device_module, "gpu_present", lambda: True)
    with pytest.raises(InputError, match="has an NVIDIA GPU, but torch .*pass --preset cpu-smoke"):
        default_preset()


DRIVER = """
import sys, ray
ray.init(num_cpus=2, num_gpus=1, include_dashboard=False, log_to_driver=False)   # a fake GPU
from search.run import main
from trainable.cli import run_cli
sys.exit(run_cli(main, sys.argv[1:]))
"""


@pytest.mark.slow
@needs_no_cuda
def test_a_trial_given_a_gpu_it_cannot_use_fails_with_the_cause_and_the_search_exits_1(tmp_path):
    args = ["--space", "baseline", "--name", "gpu", "--preset", "cpu-smoke", "--lambdas", "0.0035", "0.0067", "0.013",
            "0.025",
            "--steps-per-epoch", "1", "--batch-size", "1", "--patch-size", "64", "--max-epochs", "1",
            "--gpus-per-trial", "1", "--cpus-per-trial", "1", "--max-failures", "0", "--init-weights", "none",
            "--storage-path", str(tmp_path)]
    env = {**os.environ, "HPCM_TUNE_CACHE": str(tmp_path / "cache"), "PYTHONPATH": str(ROOT)}
    r = subprocess.run([sys.executable, "-c", DRIVER, *args], cwd=ROOT, capture_output=True, text=True,
                       timeout=600, env=env)
    assert r.returncode == 1, r.stdout[-2000:] + r.stderr[-2000:]
    assert r.stdout.strip().splitlines()[-1].startswith("1 of 1 trials errored"), r.stdout[-2000:] + r.stderr[-2000:]
    error = pd.read_csv(tmp_path / "gpu" / "results.csv")["error"][0]
    assert "Ray gave this trial GPU(s) [0], but torch" in error
    assert ("cannot use CUDA" in error) or ("CPU-only" in error)
    assert not list((tmp_path / "gpu").glob("trial_*/checkpoint_*"))           # nothing trained on the CPU


@needs_no_cuda
def test_gpu_check_without_cuda_exits_2_with_one_line():
    r = subprocess.run([sys.executable, "-m", "benchmarks.gpu_check", "--out", os.devnull], cwd=ROOT,
                       capture_output=True, text=True, timeout=300, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.count("\n") == 1 and r.stderr.startswith("error: gpu_check needs CUDA: torch")
