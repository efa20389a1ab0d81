"""HPCM model contract: official state_dict names/shapes, scale latents, any image size."""
import json
from pathlib import Path

import pytest
import torch

from trainable.models import CompressionModel, create_model, model_names

from .helpers import image, tiny_model

REFERENCE = Path(__file__).resolve().parents[2] / "shared" / "reference" / "hpcm_official_state_dict.json"


@pytest.mark.skipif(not REFERENCE.is_file(), reason="shared/reference not present")
@pytest.mark.parametrize("name", ["HPCM_Base", "HPCM_Large"])
def test_state_dict_matches_official_names_and_shapes(name):
    official = json.loads(REFERENCE.read_text())["models"][name]
    ours = {k: list(v.shape) for k, v in create_model(name).state_dict().items()}
    assert set(ours) == set(official)
    assert {k: v for k, v in ours.items() if official[k] != v} == {}


def test_official_checkpoint_with_filled_cdf_tables_loads_strictly():
    """Released checkpoints may carry CDF tables of any size; strict loading must accept them."""
    src = tiny_model()
    src.update()
    dst = create_model("HPCM_Tiny")
    dst.load_state_dict(src.state_dict(), strict=True)
    assert torch.equal(dst.quantized_cdf_y, src.quantized_cdf_y)


def test_unknown_model_name_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown model 'HPCM_Huge'"):
        create_model("HPCM_Huge")
    assert {"HPCM_Base", "HPCM_Large", "HPCM_Tiny"} <= set(model_names())


def test_hpcm_states_the_model_interface():
    model = create_model("HPCM_Tiny")
    assert isinstance(model, CompressionModel) and model.name == "HPCM_Tiny"
    assert (model.num_scales, model.scale_channels, model.num_payloads) == (3, (32, 32, 32), 2)
    assert model.coding_multiple == model.cfg.multiple == 128
    assert not any("scale" in k and "channels" in k for k in model.state_dict())   # attributes, not weights


def test_forward_returns_compressai_convention_and_scale_latents_with_gradients():
    model = tiny_model().train()
    x = image(256, 256).repeat(2, 1, 1, 1)
    out = model(x, return_scale_latents=True)
    assert out["x_hat"].shape == x.shape
    M = model.cfg.M
    y_lik, z_lik = out["likelihoods"]["y"], out["likelihoods"]["z"]
    assert y_lik.shape == (2, M, 16, 16) and z_lik.shape == (2, model.cfg.N, 4, 4)
    assert [tuple(t.shape) for t in out["scale_latents"]] == [(2, M, 4, 4), (2, M, 8, 8), (2, M, 16, 16)]
    # the coarser scales are nested in the finer ones: s1's values reappear in s3
    s1, s2, s3 = out["scale_latents"]
    assert torch.equal(s3.detach()[:, : M // 8, 0::4, 0::4], s1.detach()[:, : M // 8])
    new = out["scale_new_masks"]
    assert [tuple(m.shape[-2:]) for m in new] == [(4, 4), (8, 8), (16, 16)]
    assert new[1].mean().item() == pytest.approx(0.75) and new[2].mean().item() == pytest.approx(0.75)
    # every scale latent carries gradient back to the encoder
    for t in out["scale_latents"]:
        model.zero_grad()
        t.pow(2).mean().backward(retain_graph=True)
        assert model.g_a.branch[0].weight.grad.abs().sum() > 0


@pytest.mark.parametrize("h,w", [(300, 451), (97, 130), (256, 257)])
def test_any_image_size_is_padded_and_cropped_back(h, w):
    model = tiny_model().eval()
    with torch.no_grad():
        out = model(image(h, w))
    assert out["x_hat"].shape == (1, 3, h, w)
    assert torch.isfinite(out["x_hat"]).all()


def test_eval_forward_is_deterministic_and_training_forward_is_noisy():
    model = tiny_model()
    x = image(256, 256)
    model.eval()
    with torch.no_grad():
        a, b = model(x), model(x)
    assert torch.equal(a["likelihoods"]["y"], b["likelihoods"]["y"])
    model.train()
    with torch.no_grad():
        c, d = model(x), model(x)
    assert not torch.equal(c["likelihoods"]["y"], d["likelihoods"]["y"])


def test_channels_last_gives_the_same_outputs():
    torch.manual_seed(0)
    a = create_model("HPCM_Tiny", channels_last=False).eval()
    b = create_model("HPCM_Tiny", channels_last=True).eval()
    b.load_state_dict(a.state_dict())
    x = image(256, 320)
    with torch.no_grad():
        assert (a(x)["x_hat"] - b(x)["x_hat"]).abs().max() < 1e-5
