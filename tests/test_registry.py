"""Model registry and interface: names without torch, one-file models, a third model end to end."""
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from compressai.entropy_models import EntropyBottleneck
from torch import nn

from trainable.bitstream import CodedImage
from trainable.codec import decode, encode
from trainable.config import TrainConfig
from trainable.entropy.buffers import resize_table_buffers
from trainable.models import (CompressionModel, create_model, crop_to, declared_models, model_names,
                              pad_to_multiple, register_model)
from trainable.models import registry
from trainable.models.ops import padded_size, ste_round
from trainable.trainer import FINAL, train

from .helpers import image

ROOT = Path(__file__).resolve().parents[1]
TOY = "Toy2Scale_test"


@register_model(TOY)
class ToyTwoScale(nn.Module):
    """The smallest model the tools accept: two factorized scales, coarse (8 ch, stride 8)
    and fine (4 ch, stride 4); nothing outside this file knows it."""

    num_scales, scale_channels, coding_multiple, num_payloads = 2, (8, 4), 8, 2

    def __init__(self, **_):
        super().__init__()
        self.name = TOY
        self.g_a = nn.Conv2d(3, 4, 4, stride=4)
        self.down = nn.Conv2d(4, 8, 2, stride=2)
        self.up = nn.ConvTranspose2d(8, 4, 2, stride=2)
        self.g_s = nn.ConvTranspose2d(4, 3, 4, stride=4)
        self.bottlenecks = nn.ModuleList([EntropyBottleneck(8), EntropyBottleneck(4)])

    def _latents(self, x):
        fine = self.g_a(pad_to_multiple(x, self.coding_multiple))
        return [self.down(fine), fine]

    def _medians(self, i):
        return self.bottlenecks[i].quantiles[:, 0, 1].detach().view(1, -1, 1, 1)

    def _synthesis(self, coarse, fine, size):
        return crop_to(self.g_s(fine + self.up(coarse)), size)

    def forward(self, x, return_scale_latents=False):
        latents, likelihoods = [], {}
        for i, y in enumerate(self._latents(x)):
            likelihoods[f"y{i}"] = self.bottlenecks[i](y)[1]
            rounding = ste_round if self.training else torch.round
            latents.append(rounding(y - self._medians(i)) + self._medians(i))
        out = {"x_hat": self._synthesis(*latents, x.shape[-2:]), "likelihoods": likelihoods}
        if return_scale_latents:
            out["scale_latents"] = latents
        return out

    def update(self):
        for b in self.bottlenecks:
            b.update(force=True)

    def load_state_dict(self, state_dict, strict=True, assign=False):
        resize_table_buffers(self, state_dict)
        return super().load_state_dict(state_dict, strict=strict, assign=assign)

    @torch.no_grad()
    def compress(self, x):
        return {"strings": [b.compress(y)[0] for b, y in zip(self.bottlenecks, self._latents(x))],
                "shape": tuple(x.shape[-2:])}

    @torch.no_grad()
    def decompress(self, strings, shape):
        h, w = padded_size(shape, self.coding_multiple)
        coarse = self.bottlenecks[0].decompress([strings[0]], (h // 8, w // 8))
        fine = self.bottlenecks[1].decompress([strings[1]], (h // 4, w // 4))
        return {"x_hat": self._synthesis(coarse, fine, shape).clamp(0, 1)}


def test_registry_round_trip():
    names = model_names()
    assert {"HPCM_Base", "HPCM_Large", "HPCM_Tiny", "DHIC_Base", "DHIC_Tiny", TOY} <= set(names)
    assert list(names) == sorted(names)
    for name in ("HPCM_Tiny", "DHIC_Tiny", TOY):
        model = create_model(name)
        assert model.name == name and isinstance(model, CompressionModel)
        assert len(model.scale_channels) == model.num_scales
    with pytest.raises(ValueError, match=r"unknown model 'Nope'; choose one of .*DHIC_Tiny.*HPCM_Tiny"):
        create_model("Nope")


def test_overrides_reach_the_factory():
    assert create_model("DHIC_Tiny", latent_channels=(8, 8, 8, 8)).scale_channels == (8, 8, 8, 8)
    assert create_model("HPCM_Tiny", M=16).scale_channels == (16, 16, 16)


def test_a_name_cannot_be_taken_twice():
    create_model("DHIC_Tiny")   # imports trainable.models.dhic, which registers its names

    with pytest.raises(ValueError, match="already registered"):
        @register_model("DHIC_Tiny")
        def other(**_):
            return None


def test_models_without_the_interface_are_refused(monkeypatch):
    monkeypatch.setitem(registry._FACTORIES, "Bare_test", lambda: nn.Conv2d(3, 3, 1))
    with pytest.raises(TypeError, match="Bare_test does not implement CompressionModel: lacks num_scales"):
        create_model("Bare_test")


def test_names_are_read_from_source_without_importing(tmp_path):
    (tmp_path / "family.py").write_text(textwrap.dedent('''
        raise RuntimeError("importing this module is a bug")
        from trainable.models import register_model

        @register_model("Fam_A")
        def a(): ...

        registry.register_model("Fam_B")(a)
        NOT_A_CALL = 'register_model("Fam_C")'
    '''))
    (tmp_path / "unrelated.py").write_text("x = 1\n")
    assert declared_models(tmp_path) == {"Fam_A": "family", "Fam_B": "family"}
    (tmp_path / "family2.py").write_text('@register_model("Fam_A")\ndef b(): ...\n')
    with pytest.raises(ValueError, match="'Fam_A' is declared in both"):
        declared_models(tmp_path)


@pytest.mark.parametrize("module", ["trainable.models", "trainable.config"])
def test_model_names_do_not_import_torch(module):
    code = (f"import sys, {module}; from trainable.models import model_names; names = model_names(); "
            "assert 'torch' not in sys.modules, 'torch imported'; print(','.join(names))")
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().split(",") == ["DHIC_Base", "DHIC_Tiny", "HPCM_Base", "HPCM_Large", "HPCM_Tiny"]


def test_a_third_model_trains_and_codes_without_edits_elsewhere(tmp_path, monkeypatch):
    monkeypatch.setenv("HPCM_TUNE_CACHE", str(tmp_path / "cache"))
    config = TrainConfig(model_name=TOY, epochs=2, batch_size=2, patch_size=64, steps_per_epoch=2, num_workers=0,
                         learning_rate=1e-3, spectral_reg=True, truncation_epochs=1, phase2_reg=True,
                         phase2_start_epoch=1, save_path=str(tmp_path / "run"), real_bpp=True)
    rows = []
    train(config, lambda m, d: rows.append(m))
    assert [m["phase"] for m in rows] == ["phase1_intra", "baseline"]
    assert rows[0]["inter_scale_reg"] == 0 and rows[1]["inter_scale_reg"] < 0
    assert "inter_scale_s1_s2" in rows[1] and "inter_scale_s2_s3" not in rows[1]
    assert rows[1]["real_bpp"] > 0 and rows[1]["val_bpp"] > 0

    model = create_model(TOY)
    model.load_state_dict(torch.load(tmp_path / "run" / FINAL, weights_only=True))
    model.eval()
    x = image(70, 90)
    x_dec = decode(model, CodedImage.from_bytes(encode(model, x).to_bytes()))
    with torch.no_grad():
        assert torch.equal(x_dec, model(x)["x_hat"].clamp(0, 1))
