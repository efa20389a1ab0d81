"""Bad input to every CLI: exit status 2, one line on stderr naming what to fix, no traceback,
and nothing that existed before overwritten.

Inputs refused before any heavy import run as one ``python -m`` process each; the ones that
need torch (plans, checkpoints, images, devices) run grouped, one process per CLI, each case
through ``runpy`` exactly as ``python -m`` runs the module.
"""
import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
MODELS_SPACE = "searched: {delta: [0.0, 0.1], model: [HPCM_Tiny, HPCM_Base]}\nfixed: {phase2_reg: true}\n"
SPACES = {"quoted_bool.yaml": 'searched: {delta: [0.0, 0.1]}\nfixed: {phase2_reg: "false"}\n',
          "string_number.yaml": 'searched: {delta: ["abc", 0.1]}\nfixed: {phase2_reg: true}\n',
          "quoted_number.yaml": 'searched: {learning_rate: [0.001, 0.002]}\nfixed: {phase2_reg: true, delta: "0.1"}\n',
          "models.yaml": MODELS_SPACE}
SEARCH = ["--preset", "cpu-smoke", "--storage-path", "{tmp}/runs"]

# (module, arguments, what the one line must say); {tmp} is the test's folder (see _setup)
QUICK = [
    ("search.run", ["--space", "phase2_delta", *SEARCH, "--num-samples", "0"], "--num-samples must be >= 1"),
    ("search.run", ["--space", "phase2_delta", *SEARCH, "--name", "../../x"], "--name must be one folder name"),
    ("search.run", ["--space", "phase2_delta", "--scheduler", "hyperband"], "argument --scheduler: invalid choice"),
    ("search.run", ["--space", "phase2_delta", "--max-epochs", "x"], "argument --max-epochs: invalid int"),
    ("trainable.train", ["--epochs", "x"], "argument --epochs: invalid int value"),
    ("trainable.train", ["--distance", "nope"], "argument --distance: invalid choice: 'nope'"),
    ("trainable.pretrained.make", ["--out", "{tmp}/afolder"], "--out {tmp}/afolder is a folder"),
    ("analysis.evaluate", ["{tmp}/nope"], "experiment directory not found"),
    ("analysis.report", ["{tmp}/interrupted", "--method", "linear"], "argument --method: invalid choice"),
    ("analysis.compare", ["{tmp}/nope.csv"], "points file not found"),
    ("analysis.convergence", ["{tmp}/interrupted", "--tolerance", "-1"], "--tolerance must be >= 0"),
    ("benchmarks.positive_control", ["--seeds", "0"], "--seeds must be >= 1"),
]
GROUPED = [
    ("search.run", ["--space", "phase2_delta", "--preset", "cpu-smoke", "--storage-path", "{tmp}/afile", "--dry-run"],
     "--storage-path {tmp}/afile is a file; give a folder"),
    ("search.run", ["--space", "phase2_delta", "--preset", "cpu-smoke", "--storage-path", "{tmp}/afile/runs"],
     "cannot be created: {tmp}/afile is a file"),
    ("search.run", ["--space", "phase2_delta", *SEARCH, "--name", "a/b"], "--name must be one folder name"),
    ("search.run", ["--space", "phase2_delta", *SEARCH, "--lambdas", "0.0067", "0.025", "--dry-run"],
     "a BD-rate needs at least 4 points per curve"),
    ("search.run", ["--space", "{tmp}/quoted_bool.yaml", *SEARCH, "--dry-run"],
     "phase2_reg: 'false' is a str, expected a boolean"),
    ("search.run", ["--space", "{tmp}/string_number.yaml", *SEARCH], "delta: 'abc' is a str, expected a number"),
    ("search.run", ["--space", "{tmp}/quoted_number.yaml", *SEARCH], "delta: '0.1' is a str, expected a number"),
    ("search.run", ["--space", "{tmp}/models.yaml", *SEARCH, "--dry-run"],
     "preset cpu-smoke's warm start fits HPCM_Tiny only; pass --init-weights none"),
    ("search.run", ["--space", "phase2_delta", *SEARCH, "--model", "HPCM_Nope"], "unknown model 'HPCM_Nope'"),
    ("search.run", ["--space", "phase2_delta", *SEARCH, "--batch-size", "0"], "batch size must be >= 1"),
    ("search.run", ["--space", "phase2_delta", *SEARCH, "--learning-rate", "-1"], "learning rate must be > 0"),
    ("search.run", ["--space", "phase2_delta", *SEARCH, "--train-dataset", "{tmp}/one_image"],
     "has 1 image(s); training needs at least 2"),
    ("search.run", ["--space", "phase2_delta", *SEARCH, "--name", "existing"],
     "exists; pass --resume to finish it or --name for a new one"),
    ("trainable.train", ["--save_path", "{tmp}/afile"], "--save_path {tmp}/afile is a file; give a folder"),
    ("trainable.train", ["--device", "nope", "--save_path", "{tmp}/t1"], "--device 'nope' is not a device"),
    ("trainable.train", ["--checkpoint", "{tmp}/corrupt.pth.tar", "--model_name", "HPCM_Tiny", "--save_path",
                         "{tmp}/t2"], "not a torch weights file, or one holding Python objects"),
    ("trainable.train", ["--spectral-reg", "--epochs", "5", "--save_path", "{tmp}/t3"],
     "Phase 1 lasts 100 epochs (truncation_epochs) of a 5-epoch run"),
    ("trainable.train", ["--train_dataset", "{tmp}/one_image", "--model_name", "HPCM_Tiny", "--epochs", "1",
                         "--save_path", "{tmp}/t4"], "has 1 image(s); training needs at least 2"),
    ("trainable.train", ["--train_dataset", "{tmp}/tiny_images", "--model_name", "HPCM_Tiny", "--epochs", "1",
                         "--patch-size", "128", "--save_path", "{tmp}/t5"], "crops would be 100% padding"),
    ("trainable.codec", ["encode", "{tmp}/img.png", "-o", "{tmp}/afolder", "--model", "HPCM_Tiny", "--checkpoint",
                         "{tmp}/corrupt.pth.tar"], "-o/--output {tmp}/afolder is a folder"),
    ("trainable.codec", ["encode", "{tmp}/img.png", "-o", "{tmp}/x.hpcm", "--model", "HPCM_Tiny", "--checkpoint",
                         "{tmp}/corrupt.pth.tar"], "not a torch weights file"),
    ("analysis.evaluate", ["{tmp}/interrupted"], "was interrupted (1 of 1 trials unfinished); finish it first"),
    ("analysis.report", ["{tmp}/interrupted"], "was interrupted (1 of 1 trials unfinished); finish it first"),
]
RUNPY = """import contextlib, io, json, runpy, sys
out = []
for module, args in json.loads(sys.stdin.read()):
    err = io.StringIO()
    sys.argv = [module, *args]
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            runpy.run_module(module, run_name="__main__", alter_sys=True)
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        except BaseException as exc:
            code, _ = 1, err.write(f"Traceback: {type(exc).__name__}: {exc}")
    out.append([code, err.getvalue()])
print(json.dumps(out))
"""


def _setup(tmp: Path) -> None:
    (tmp / "afile").write_text("a file where a folder belongs")
    (tmp / "afolder").mkdir()
    (tmp / "corrupt.pth.tar").write_bytes(b"garbage, not a checkpoint")
    Image.new("RGB", (64, 64), (30, 90, 150)).save(tmp / "img.png")
    for name, text in SPACES.items():
        (tmp / name).write_text(text)
    (tmp / "one_image").mkdir()
    Image.new("RGB", (200, 200)).save(tmp / "one_image" / "a.png")
    (tmp / "tiny_images").mkdir()
    for i in range(3):
        Image.fromarray(np.full((8, 8, 3), 40 * i, np.uint8)).save(tmp / "tiny_images" / f"{i}.png")
    existing = tmp / "runs" / "existing"                     # a search that ran: never overwritten
    existing.mkdir(parents=True)
    (existing / "experiment.json").write_text(json.dumps({"name": "existing", "status": "finished"}))
    trial = tmp / "interrupted" / "trial_a"                  # a search a signal stopped
    trial.mkdir(parents=True)
    (trial / "params.json").write_text(json.dumps({"configuration": "off", "is_off": True, "seed": 0, "epochs": 3}))
    (trial / "result.json").write_text(json.dumps({"epoch": 1, "lambda=0.01/val_bpp": 0.5}) + "\n")
    (tmp / "interrupted" / "experiment.json").write_text(json.dumps(
        {"status": "interrupted", "resume_command": "python -m search.run --space x --resume"}))
    (tmp / "interrupted" / "results.csv").write_text(
        f"trial_id,trial_dir,status,rd_score\na,{trial},INTERRUPTED,\n")


def _snapshot(tmp: Path) -> dict[str, str]:
    return {str(p.relative_to(tmp)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in tmp.rglob("*") if p.is_file() and "cache" not in p.parts}


def _fill(args: list[str], tmp: Path) -> list[str]:
    return [a.replace("{tmp}", str(tmp)) for a in args]


def _env(tmp: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "HPCM_TUNE_CACHE": str(tmp / "cache")}


def _check(code: int, err: str, message: str, what: str) -> None:
    assert code == 2, f"{what}: exit {code}\n{err}"
    assert "Traceback" not in err and err.endswith("\n") and err.count("\n") == 1, f"{what}:\n{err}"
    assert message in err, f"{what}: {err}"
    assert "(from preset" not in err or "λ" in message, f"{what}: a λ blamed for another setting: {err}"


@pytest.fixture
def tmp(tmp_path):
    _setup(tmp_path)
    before = _snapshot(tmp_path)
    yield tmp_path
    after = _snapshot(tmp_path)
    changed = sorted(k for k in before if after.get(k) != before[k])
    assert not changed, f"existing files overwritten or removed: {changed}"


@pytest.mark.parametrize("module,args,message", QUICK, ids=[f"{m} {' '.join(a[-2:])}" for m, a, _ in QUICK])
def test_bad_input_is_refused_in_one_line_before_heavy_imports(tmp, module, args, message):
    start = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", module, *_fill(args, tmp)], cwd=tmp, capture_output=True, text=True,
                       env=_env(tmp), timeout=120)
    _check(r.returncode, r.stderr, message.replace("{tmp}", str(tmp)), f"{module} {args}")
    assert time.perf_counter() - start < 60


@pytest.mark.parametrize("module", sorted({m for m, _, _ in GROUPED}))
def test_bad_input_that_needs_torch_is_refused_in_one_line(tmp, module):
    cases = [(args, message) for m, args, message in GROUPED if m == module]
    if module == "trainable.train":
        import torch

        if not torch.cuda.is_available():                     # without a GPU, --device cuda is bad input
            cases.append((["--device", "cuda", "--save_path", "{tmp}/t6"], "--device cuda: "))
    r = subprocess.run([sys.executable, "-c", RUNPY], input=json.dumps([[module, _fill(a, tmp)] for a, _ in cases]),
                       cwd=tmp, capture_output=True, text=True, env=_env(tmp), timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    for (args, message), (code, err) in zip(cases, json.loads(r.stdout.strip().splitlines()[-1])):
        _check(code, err, message.replace("{tmp}", str(tmp)), f"{module} {args}")


@pytest.mark.parametrize("module", ["search.run", "trainable.train", "analysis.evaluate", "analysis.convergence",
                                    "trainable.pretrained.make", "benchmarks.positive_control"])
def test_help_does_not_import_torch(module):
    """--help answers before the heavy imports (torch alone takes seconds on a busy machine)."""
    code = (f"import runpy, sys; sys.argv = [{module!r}, '--help']\n"
            f"try:\n    runpy.run_module({module!r}, run_name='__main__', alter_sys=True)\n"
            "except SystemExit:\n    pass\n"
            "print('torch' in sys.modules, file=sys.stderr)")
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120,
                       env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert r.stdout.startswith("usage:") and r.stderr.strip().splitlines()[-1] == "False", r.stderr
