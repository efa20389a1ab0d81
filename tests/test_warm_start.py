"""Per-λ warm starts: a folder or a mapping λ → checkpoint, each λ model starting from its own file."""
import json
from dataclasses import replace

import pytest
import torch

from search import run as search_run
from search.config import SearchConfig
from search.plan import make_plan
from trainable.cli import run_cli
from trainable.errors import CheckpointError, InputError
from trainable.models import create_model
from trainable.trainer import Run
from trainable.warm_start import resolve, weights_for

LAMBDAS = (0.0067, 0.025)


def _states(folder, names: dict[float, str]) -> dict[float, dict]:
    """One HPCM_Tiny state_dict per λ, each from its own seed, saved under the given names."""
    folder.mkdir(exist_ok=True)
    states = {}
    for i, (lmbda, name) in enumerate(names.items()):
        torch.manual_seed(100 + i)
        states[lmbda] = create_model("HPCM_Tiny").state_dict()
        torch.save(states[lmbda], folder / name)
    return states


def _plan(spec: str):
    cfg = SearchConfig.create("phase2_delta", "cpu-smoke", lambdas=LAMBDAS, init_weights=spec)
    return search_run.warm_start(make_plan(cfg, verify_data=False))


def _assert_starts_from(plan, states):
    for lmbda, state in states.items():
        run = Run(replace(plan.base, lmbda=lmbda), torch.device("cpu"), 1)    # the trainer's own hook
        loaded = run.model.state_dict()
        assert all(torch.equal(loaded[k], v) for k, v in state.items()), f"λ {lmbda} did not start from its file"


def test_a_folder_gives_every_lambda_model_its_own_checkpoint(tmp_path):
    # names as users keep the official releases; 0.0250 is the λ 0.025
    states = _states(tmp_path / "ckpts", {0.0067: "HPCM_Tiny_mse_0.0067.pth.tar", 0.025: "lambda=0.0250.pth"})
    (tmp_path / "ckpts" / "notes.txt").write_text("0.0067")                 # not a checkpoint: ignored
    plan = _plan(str(tmp_path / "ckpts"))
    mapping = {float(k): v for k, v in json.loads(plan.base.init_weights).items()}
    assert mapping == {0.0067: str(tmp_path / "ckpts" / "HPCM_Tiny_mse_0.0067.pth.tar"),
                       0.025: str(tmp_path / "ckpts" / "lambda=0.0250.pth")}
    assert plan.trial_params(plan.configurations[0], 0)["init_weights"] == plan.base.init_weights
    _assert_starts_from(plan, states)


def test_a_mapping_inline_or_in_a_json_file(tmp_path):
    states = _states(tmp_path / "w", {0.0067: "a.pt", 0.025: "b.pt"})
    inline = json.dumps({"0.0067": str(tmp_path / "w" / "a.pt"), "0.025": str(tmp_path / "w" / "b.pt")})
    _assert_starts_from(_plan(inline), states)
    table = tmp_path / "w" / "weights.json"                      # relative paths: relative to the file
    table.write_text(json.dumps({"0.025": "b.pt", "0.0067": "a.pt", "0.0483": "unused.pt"}))
    assert weights_for(str(table), 0.025) == str(tmp_path / "w" / "b.pt")
    _assert_starts_from(_plan(str(table)), states)


def test_one_file_still_serves_every_lambda(tmp_path):
    states = _states(tmp_path / "one", {0.0067: "w.pth.tar"})
    plan = _plan(str(tmp_path / "one" / "w.pth.tar"))
    assert plan.base.init_weights == str(tmp_path / "one" / "w.pth.tar")
    _assert_starts_from(plan, {0.025: states[0.0067]})


def test_a_lambda_without_a_file_or_with_two_is_refused(tmp_path):
    _states(tmp_path / "half", {0.0067: "0.0067.pth"})
    with pytest.raises(InputError, match=r"λ 0.025 has no checkpoint in folder"):
        resolve(str(tmp_path / "half"), LAMBDAS)
    with pytest.raises(InputError, match=r"λ 0.025 has no checkpoint in the mapping"):
        resolve(json.dumps({"0.0067": str(tmp_path / "half" / "0.0067.pth")}), LAMBDAS)
    _states(tmp_path / "half", {0.0067: "copy_0.0067.pth"})
    with pytest.raises(InputError, match=r"λ 0.0067 matches 2 files"):
        resolve(str(tmp_path / "half"), LAMBDAS)


def _cli(argv, capsys):
    try:
        code = run_cli(search_run.main, argv)
    except SystemExit as exc:
        code = exc.code
    return code, capsys.readouterr().err


def test_cli_refusals_are_one_line_before_ray(tmp_path, capsys):
    import ray

    base = ["--space", "phase2_delta", "--preset", "cpu-smoke", "--lambdas", *map(str, LAMBDAS),
            "--storage-path", str(tmp_path / "runs"), "--dry-run", "--step-seconds", "1"]
    _states(tmp_path / "half", {0.0067: "0.0067.pth"})
    code, err = _cli([*base, "--init-weights", str(tmp_path / "half")], capsys)
    assert code == 2 and err.count("\n") == 1 and "λ 0.025 has no checkpoint" in err, err
    # a checkpoint of another model (DHIC_Tiny) for λ 0.025: names/shapes differ from HPCM_Tiny's
    torch.save(create_model("DHIC_Tiny").state_dict(), tmp_path / "half" / "0.025.pth")
    code, err = _cli([*base, "--init-weights", str(tmp_path / "half")], capsys)
    assert code == 2 and err.count("\n") == 1 and "λ 0.025" in err and "does not fit model HPCM_Tiny" in err, err
    # same names, one shape changed
    state = torch.load(tmp_path / "half" / "0.0067.pth", weights_only=True)
    key = next(k for k, v in state.items() if v.dim() == 4)
    state[key] = torch.zeros(state[key].shape[0] + 1, *state[key].shape[1:])
    torch.save(state, tmp_path / "half" / "0.025.pth")
    with pytest.raises(CheckpointError, match="λ 0.025.*shape mismatch"):
        _plan(str(tmp_path / "half"))
    code, err = _cli([*base, "--init-weights", str(tmp_path / "nowhere")], capsys)
    assert code == 2 and "no such file or folder" in err
    assert not ray.is_initialized() and not (tmp_path / "runs").exists()
