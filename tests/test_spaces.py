"""Spaces as data: registry, configurations (inert points removed), checks against TrainConfig."""
import pkgutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

import spaces
from spaces import MS_SSIM_LAMBDAS, OFFICIAL_LAMBDAS, Param, SearchSpace, choice, get_space, register, registry
from trainable.config import TrainConfig
from trainable.errors import InputError

ROOT = Path(__file__).resolve().parents[1]
BASE = TrainConfig(model_name="HPCM_Tiny", epochs=30, lmbda=0.013)


def grid_ids(space, base=BASE, epochs=30):
    return [c.id for c in space.grid(base, epochs)]


def test_every_space_module_registers_its_space_without_a_central_list():
    modules = {m.name for m in pkgutil.iter_modules([str(ROOT / "spaces")])} - {"base", "registry"}
    found = registry()
    assert {sys.modules[f"spaces.{m}"].SPACE.name for m in modules} == set(found)
    with pytest.raises(ValueError, match="two spaces are named 'phase2_delta'"):
        register(replace(found["phase2_delta"], description="another"))


def test_import_spaces_does_not_import_torch():
    code = "import sys, spaces; spaces.registry(); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False", out.stderr


def test_enumeration_removes_inert_combinations_and_puts_off_first():
    design = get_space("phase2_design")   # 4 aligners x 2 signs x 2 alignments x 2 latents x δ in {0, 0.1}
    confs = design.grid(BASE, 30)
    assert [c.id for c in confs if c.is_off] == ["off"] == [confs[0].id]
    # the joint aligner's sign is inert (repel(A) = attract(-A) + const): 3 x 2 x 2 x 2 + 2 x 2, not 4 x 2 x 2 x 2
    assert len(confs) == 1 + 24 + 4 and len({c.id for c in confs}) == len(confs)
    joint = [c for c in confs if c.overrides.get("phase2_aligner") == "joint"]
    assert len(joint) == 4 and all("phase2_sign" not in c.overrides and "sign" not in c.id for c in joint)
    assert all(c.overrides["phase2_reg"] and c.overrides["delta"] == 0.1 for c in confs[1:])
    assert confs[0].overrides == {"spectral_reg": False, "phase2_reg": False}   # δ, sign, ... dropped
    assert len(grid_ids(get_space("ablation_delta"))) == 1 + 3 * 3
    assert grid_ids(get_space("ablation_tau")) == ["off"] + [f"tau_init={t},truncation_epochs=1"
                                                             for t in (0.05, 0.1, 0.2, 0.5)]
    assert grid_ids(get_space("baseline")) == ["off"]
    assert grid_ids(get_space("lambda")) == ["off", "default"]   # regularizers fixed on: off is still added


def test_truncation_fraction_becomes_epochs_in_one_place():
    space = get_space("phase1_tau")
    conf = space.configuration({"tau_init": 0.2, "truncation_fraction": 1 / 6}, BASE, 30)
    assert conf.overrides["truncation_epochs"] == 5 and conf.id == "tau_init=0.2,truncation_epochs=5"
    assert spaces.truncation_epochs(0.9, 4) == 3 and spaces.truncation_epochs(0.001, 10) == 1
    assert space.configuration({"tau_init": 0.2, "truncation_fraction": 0.0}, BASE, 30).id == "off"
    assert space.longest_truncation(BASE, 30) == 5
    assert get_space("phase2_delta").longest_truncation(BASE, 30) == 0


def test_sampled_values_are_rounded_so_near_equal_samples_are_one_configuration():
    space = get_space("joint")
    a = space.configuration({"tau_init": 0.1234567, "truncation_fraction": 1 / 15, "delta": 0.1}, BASE, 30)
    b = space.configuration({"tau_init": 0.1233999, "truncation_fraction": 1 / 15, "delta": 0.1}, BASE, 30)
    assert a.id == b.id == "delta=0.1,tau_init=0.123,truncation_epochs=2" and a.overrides["tau_init"] == 0.123
    # Phase 1 off: its tau is inert and leaves the id
    c = space.configuration({"tau_init": 0.4, "truncation_fraction": 0.0, "delta": 0.05}, BASE, 30)
    assert c.id == "delta=0.05" and "tau_init" not in c.overrides


def test_model_can_be_fixed_or_searched(tmp_path):
    fixed = SearchSpace("m", "", {"delta": choice(0.0, 0.1)}, fixed={"phase2_reg": True, "model": "HPCM_Tiny"})
    assert fixed.model == "HPCM_Tiny" and fixed.grid(BASE, 30)[1].overrides["model_name"] == "HPCM_Tiny"
    path = tmp_path / "models.yaml"
    path.write_text("searched:\n  model: [HPCM_Tiny, HPCM_Base]\n  delta: [0.0, 0.1]\nfixed: {phase2_reg: true}\n")
    ids = grid_ids(get_space(str(path)))
    assert ids == ["off", "delta=0.1,model_name=HPCM_Tiny", "model_name=HPCM_Base",
                   "delta=0.1,model_name=HPCM_Base"]
    bad = SearchSpace("m", "", {"model": choice("HPCM_Tiny", "HPCM_Nope")})
    with pytest.raises(InputError, match="model=.HPCM_Nope.: unknown model"):
        bad.check(BASE, 30)


@pytest.mark.parametrize("searched,message", [
    ({"delta": choice(-1.0, 0.1)}, "delta=-1.0: delta must be >= 0"),
    ({"tau_init": Param("uniform", low=0.1, high=1.5)}, "tau_init=1.5: tau_init must be in"),
    ({"distance": choice("l2", "manhattan")}, "distance='manhattan'"),
    ({"truncation_epochs": Param("int", low=-3, high=4)}, "truncation_epochs=-3"),
])
def test_every_value_and_both_range_ends_are_checked(searched, message):
    space = SearchSpace("bad", "", searched, fixed={"spectral_reg": True, "phase2_reg": True})
    with pytest.raises(InputError, match=message):
        space.check(replace(BASE, truncation_epochs=10), 30)      # Phase 1 shorter than the run: only the value is bad


def test_ms_ssim_spaces_take_ms_ssim_lambdas_and_mixed_scales_are_refused():
    ms = SearchSpace("ms", "", {"delta": choice(0.0, 0.1)}, fixed={"metric": "ms-ssim", "phase2_reg": True})
    assert ms.lambdas == MS_SSIM_LAMBDAS and ms.metric == "ms-ssim"
    assert SearchSpace("mse", "", {}).lambdas == OFFICIAL_LAMBDAS
    own = SearchSpace("ms", "", {}, fixed={"metric": "ms-ssim"}, lambdas=(3.0, 6.0))
    assert own.lambdas == (3.0, 6.0)
    with pytest.raises(InputError, match="whose λ scales differ"):
        SearchSpace("x", "", {"metric": choice("mse", "ms-ssim")})
    with pytest.raises(InputError, match="mix the ms-ssim and mse scales"):
        SearchSpace("x", "", {}, lambdas=(0.013, 8.73))
    with pytest.raises(InputError, match="not on the ms-ssim scale"):
        own.check(replace(BASE, metric="ms-ssim", lmbda=0.013), 30)


def test_space_files_and_invalid_spaces(tmp_path):
    good = tmp_path / "mine.yaml"
    good.write_text("searched:\n  delta: [0.0, 0.2]\n  tau_init: {kind: loguniform, low: 0.02, high: 0.5}\n"
                    "fixed:\n  phase2_reg: true\nlambdas: [0.013, 0.025]\n")
    space = get_space(str(good))
    assert space.lambdas == (0.013, 0.025) and not space.enumerable and space.searched["delta"].values == (0.0, 0.2)
    for text, message in [('{"searched": {"colour": [1, 2]}}', "unknown parameter 'colour'"),
                          ('{"searched": {"delta": {"kind": "uniform", "low": 1, "high": 0}}}', "needs numbers low < high"),
                          ('{"searched": {"learning_rate": {"kind": "uniform", "low": 1e-4, "high": 1e-3}}}',
                           "needs a value for the off configuration"),
                          ('{"searched": {"truncation_epochs": [1]}, "fixed": {"truncation_epochs": 2}}',
                           "both searched and fixed"),
                          ('{"lambdas": [0.01, -1]}', "lambdas must be a list of positive numbers"),
                          ('{"fixed": {"model_name": "HPCM_Tiny"}}', "unknown parameter 'model_name' .use 'model'.")]:
        (tmp_path / "bad.json").write_text(text)
        with pytest.raises(InputError, match=message):
            get_space(str(tmp_path / "bad.json"))
    (tmp_path / "broken.yaml").write_text("searched: [unclosed")
    with pytest.raises(InputError, match="not valid YAML"):
        get_space(str(tmp_path / "broken.yaml"))
    with pytest.raises(InputError, match="unknown space 'nope'"):
        get_space("nope")


def test_a_phase2_that_starts_after_the_last_epoch_is_the_off_configuration():
    space = SearchSpace("late", "", {"phase2_start_epoch": choice(0, 10, 30, 45), "delta": choice(0.0, 0.1)},
                        fixed={"phase2_reg": True})
    assert grid_ids(space) == ["off", "delta=0.1,phase2_start_epoch=0", "delta=0.1,phase2_start_epoch=10"]
    late = space.configuration({"phase2_start_epoch": 30, "delta": 0.1}, BASE, 30)
    assert late.is_off and late.overrides == {"spectral_reg": False, "phase2_reg": False}
    # the same start inside a longer run is a real configuration
    assert not space.configuration({"phase2_start_epoch": 30, "delta": 0.1}, BASE, 31).is_off
