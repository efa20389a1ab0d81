"""Ours vs the official HPCM: output parity at identical weights, then training-step speed.

    python -m benchmarks.hpcm_vs_official --official /path/to/LIC-HPCM [--model HPCM_Base]

A training step is forward + RD loss + backward + Adam step on the same random batch.
Prints max |Δ| of x_hat and likelihoods (eval mode, and training mode with the same
noise seed) and the official/ours step-time ratio (> 1: ours is faster).
"""
from __future__ import annotations

import argparse
import json
import math

import torch

from trainable.models import create_model

from .official import load_official, official_root
from .timing import interleaved_medians


def _rd_step(model: torch.nn.Module, optimizer: torch.optim.Optimizer, x: torch.Tensor, lmbda: float = 0.013) -> None:
    out = model(x)
    bpp = sum(l.log().sum() for l in out["likelihoods"].values()) / (-math.log(2) * x.shape[0] * x.shape[2] * x.shape[3])
    loss = lmbda * 255**2 * torch.mean((out["x_hat"] - x) ** 2) + bpp
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()


def _max_diff(a: dict, b: dict) -> dict[str, float]:
    return {
        "x_hat": (a["x_hat"] - b["x_hat"]).abs().max().item(),
        "y": (a["likelihoods"]["y"] - b["likelihoods"]["y"]).abs().max().item(),
        "z": (a["likelihoods"]["z"] - b["likelihoods"]["z"]).abs().max().item(),
    }


def run(official: str | None, model: str = "HPCM_Base", batch: int = 2, size: int = 256,
        repeats: int = 5, device: str = "cpu") -> dict:
    root = official_root(official)
    if root is None:
        return {"skipped": "official HPCM code not found: pass --official PATH or set HPCM_OFFICIAL_SRC"}
    dev = torch.device(device)
    torch.manual_seed(0)
    ref = load_official(model, root).to(dev)
    with torch.no_grad():  # move away from the all-ones/zeros init so parity is not trivial
        for p in ref.parameters():
            p.add_(0.01 * torch.randn_like(p))
    ours = create_model(model).to(dev)
    ours.load_state_dict(ref.state_dict(), strict=True)

    x_eval = torch.rand(1, 3, 256, 512, device=dev)
    ref.eval(), ours.eval()
    with torch.no_grad():
        parity_eval = _max_diff(ref(x_eval), ours(x_eval))
    ref.train(), ours.train()
    x = torch.rand(batch, 3, size, size, device=dev)
    torch.manual_seed(1)
    out_ref = ref(x)
    torch.manual_seed(1)
    parity_train = _max_diff(out_ref, ours(x))
    del out_ref

    # The official model with channels-last weights too, to show what the memory format alone buys.
    ref_cl = load_official(model, root).to(dev)
    ref_cl.load_state_dict(ref.state_dict())
    ref_cl = ref_cl.to(memory_format=torch.channels_last).train()
    x_cl = x.contiguous(memory_format=torch.channels_last)
    opts = {name: torch.optim.Adam(m.parameters(), 1e-4) for name, m in
            (("official", ref), ("official_channels_last", ref_cl), ("ours", ours))}
    med = interleaved_medians({"official": lambda: _rd_step(ref, opts["official"], x),
                               "official_channels_last": lambda: _rd_step(ref_cl, opts["official_channels_last"], x_cl),
                               "ours": lambda: _rd_step(ours, opts["ours"], x)}, repeats=repeats, device=dev)
    return {"model": model, "device": str(dev), "batch": [batch, 3, size, size],
            "parity_eval_max_abs": parity_eval, "parity_train_max_abs": parity_train,
            "step_s": med, "speedup_official_over_ours": med["official"] / med["ours"],
            "speedup_official_channels_last_over_ours": med["official_channels_last"] / med["ours"]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--official", help="path to a LIC-HPCM checkout (default: $HPCM_OFFICIAL_SRC)")
    p.add_argument("--model", default="HPCM_Base", choices=["HPCM_Base", "HPCM_Large"])
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    a = p.parse_args()
    print(json.dumps(run(a.official, a.model, a.batch, a.size, a.repeats, a.device), indent=2))


if __name__ == "__main__":
    main()
