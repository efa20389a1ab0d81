"""The `make demo` preset: its λs give an MSE RD curve, its shipped warm start loads strictly."""
import pytest

from search import run as search_run
from search.config import SearchConfig
from search.plan import make_plan
from search.presets import PRESETS
from trainable.config import LAMBDA_SCALE
from trainable.errors import CheckpointError, InputError
from trainable.pretrained import WARM_START, WARM_START_MODEL, warm_start_path

SMOKE = PRESETS["cpu-smoke"]


def test_cpu_smoke_lambdas_are_mse_scale_and_span_a_curve():
    lambdas = SMOKE["lambdas"]
    low, high = LAMBDA_SCALE["mse"]
    assert len(set(lambdas)) >= 4                      # BD-rate needs 4 points
    assert all(low < v < high for v in lambdas)
    assert max(lambdas) / min(lambdas) >= 20           # wide enough for distinct rates after a short fine-tune


def test_warm_start_resolves_from_the_package_and_is_small():
    path = warm_start_path()
    assert path.is_absolute() and path.name == WARM_START and path.is_file()
    assert SMOKE["init_weights"] == str(path)
    assert SMOKE["model"] == WARM_START_MODEL
    assert path.stat().st_size < 3_000_000


def test_warm_start_loads_strictly_into_hpcm_tiny():
    import torch

    from trainable.checkpoint import load_file, load_weights
    from trainable.models import create_model

    model = create_model(WARM_START_MODEL)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    load_weights(model, warm_start_path())              # strict: raises on a missing/unexpected key
    state = load_file(warm_start_path())
    assert isinstance(state, dict) and "optimizer" not in state    # inference weights only
    changed = [k for k, v in model.state_dict().items() if v.shape == before[k].shape and not torch.equal(v, before[k])]
    assert len(changed) > len(before) // 2              # the weights were actually replaced


def test_search_plan_puts_the_warm_start_on_every_model(tmp_path):
    plan = search_run.warm_start(make_plan(SearchConfig.create("phase2_delta", "cpu-smoke"), verify_data=False))
    assert plan.base.init_weights == str(warm_start_path())
    conf = plan.configurations[0]
    assert plan.trial_params(conf, 0)["init_weights"] == str(warm_start_path())
    off = search_run.warm_start(make_plan(SearchConfig.create("phase2_delta", "cpu-smoke", init_weights="none"),
                                          verify_data=False))
    assert off.base.init_weights is None
    with pytest.raises(InputError, match="no such file"):
        SearchConfig.create("phase2_delta", "cpu-smoke", init_weights=str(tmp_path / "missing.pth.tar"))
    bad = tmp_path / "bad.pth.tar"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError):
        search_run.warm_start(make_plan(SearchConfig.create("phase2_delta", "cpu-smoke", init_weights=str(bad)),
                                        verify_data=False))
