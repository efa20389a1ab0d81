"""The measure of what Phase 2 changed: held-out linear predictability of each coarse scale
from the finer one, logged at every validation for every run (regularizer on or off).

For each adjacent pair, rows are coarse-grid positions of all validation images (inside the
unpadded image area): X = the Haar sub-bands of the finer latent, masked to its new positions
when the model has nested scales (HPCM: otherwise the finer latent holds the coarse one and
R^2 is trivially 1), Y = the coarse latent. A ridge fitted on one half of the positions
scores R^2 on the other half. R^2 near 1: the coarse scale is redundant given the finer one;
near 0 (or below): it carries information the finer scale does not linearly explain.
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import torch

from .inter_scale import dwt_features, pairs_fine
from .ridge import as_rows, held_out_r2


def pair_rows(latents: Sequence[torch.Tensor], new_masks: Sequence[torch.Tensor] | None,
              covered: tuple[float, float]) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(X rows, Y rows) per adjacent pair of one image's scale latents, keeping the coarse
    positions that overlap the image; ``covered`` = image size / padded size, per axis."""
    rows = []
    for coarse, fine in zip(latents[:-1], pairs_fine(latents, new_masks)):
        h, w = (math.ceil(n * f) for n, f in zip(coarse.shape[-2:], covered))
        features = dwt_features(fine, "subbands")[..., :h, :w]
        rows.append((as_rows(features).float(), as_rows(coarse[..., :h, :w]).float()))
    return rows


def inter_scale_r2(images: Iterable[list[tuple[torch.Tensor, torch.Tensor]]], names: Sequence[str]) -> dict[str, float]:
    """``val_inter_scale_r2_<pair>`` from the per-image rows of :func:`pair_rows`."""
    per_pair = list(zip(*images))
    out = {}
    for name, pairs in zip(names, per_pair):
        x = torch.cat([p[0] for p in pairs])
        y = torch.cat([p[1] for p in pairs])
        out[f"val_inter_scale_r2_{name}"] = held_out_r2(x, y)
    return out
