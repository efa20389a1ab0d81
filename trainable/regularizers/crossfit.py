"""Phase 2's default charge: how well a fresh linear fit predicts the coarse scale, held out.

For a pair (coarse c, finer f) and a batch, with X = DWT(f) and Y = c as rows (positions x
channels), each image centred, and blocked folds k (image i in fold i mod K, ``ridge.fold_parts``):

    W_pool(a) = argmin_W  Pool(W) + lambda(a) ||W||^2           fit on the pooled recent images only
    W_k(a)    = argmin_W ||Y_{-k} - X_{-k} W||^2 + lambda(a) ||W||^2   fit on this batch's other folds
    S = min over the candidates W of  sum_k ||Y_k - X_k W||^2,  E = sum_k ||Y_k||^2     (held out)
    R^2 = 1 - S / E,                 reading d = S / E = 1 - R^2        (logged: inter_scale_<pair>)
    term  = 2 S / (S + E)                                               (in the loss: sign * delta * term)

* The pool: exponentially decayed sums of X^T X and X^T Y over earlier batches, weighted so they
  hold about ``POOL_IMAGES`` images at every batch size (decay 1 - B / POOL_IMAGES). A fit on the
  batch alone under-reads with few images (true R^2 0.5 read 0.03 at batch 4, 0.28 at 16): the
  pooled fit gives the term one meaning at every batch size. The pool is updated after use (the
  scored batch is never in its own fit); the batch-alone candidates keep a drift of the encoder
  from outrunning a stale pool. One image (batch 1) has the pooled fit only: its two halves
  share smooth content across their border (a fit on one read R^2 0.3-0.6 on the other for
  independent smooth fields).
* The fit is a constant for the encoder (envelope gradient): only the held-out rows carry
  gradient, so the term is what a fresh best response achieves, with nothing stale to outrun
  beyond the pool's ~``POOL_IMAGES`` images.
* The smooth bound: 2 S / (S + E) equals d at d = 1 (the zero predictor), lies in [0, 2) and has
  a gradient everywhere (a cap of d at 1 zeroed it on most batches of independent scales).
* A coarse scale with nothing to predict (E = 0: collapsed, or a 1 x 1 grid that centring
  empties) gains nothing: its term is the worst the sign allows (0 under repel, 2 under attract)
  and its reading 1.
* The candidates: pooled and batch-alone, each for every a in ``RIDGES``; the best on this batch
  is charged (a best response: slightly optimistic where rows are few).
No parameters; fp32 (also under bf16 autocast); no host syncs.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .inter_scale import SIGNS, Aligner, Distance, l2_distance, register_aligner, rms_normalize
from .ridge import RIDGES, as_rows, centred, cross_fitted, moment_weights

POOL_IMAGES = 64
BOUND = 2.0


def bounded(sse: torch.Tensor, energy: torch.Tensor, sign: str) -> torch.Tensor:
    """The term 2 S / (S + E); the sign's worst value when E = 0 (nothing to predict gains nothing)."""
    worst = 0.0 if SIGNS[sign] < 0 else BOUND
    return torch.where(energy > 0, 2 * sse / (sse + energy).clamp_min(1e-30), worst)


@register_aligner("crossfit")
class CrossFitAligner(Aligner):
    """The best linear predictor of c from DWT(f), refitted on every batch plus a pool of recent
    images, scored held out (module docstring)."""

    def __init__(self, in_channels: int, out_channels: int, pool_images: int = POOL_IMAGES) -> None:
        super().__init__()
        self.pool_images = pool_images
        self.register_buffer("ridges", torch.tensor(RIDGES, dtype=torch.float32), persistent=False)
        self.register_buffer("pool_xx", torch.zeros(in_channels, in_channels))
        self.register_buffer("pool_xy", torch.zeros(in_channels, out_channels))

    def charge(self, bands: torch.Tensor, coarse: torch.Tensor, distance: Distance,
               sign: str = "repel") -> tuple[torch.Tensor, torch.Tensor]:
        with torch.autocast(bands.device.type, enabled=False):
            bands, coarse = bands.float(), coarse.float()
            x, target = centred(bands), centred(coarse)
            pooled = torch.einsum("bdhw,gdm->gbmhw", x, moment_weights(self.pool_xx, self.pool_xy, self.ridges))
            predictions = pooled
            if len(bands) >= 2:    # and the batch's own fit (a drift cannot outrun it); one image has none (its halves leak)
                predictions = torch.cat([pooled, cross_fitted(bands, coarse, self.ridges, detach_fit=True)[0]])
            if distance is l2_distance:
                energy = target.pow(2).sum()   # below float rounding of the raw latents: collapsed, nothing to predict
                energy = torch.where(energy > 1e-10 * coarse.pow(2).sum(), energy, 0.0)
                # an empty pool is no candidate (its zero predictor would flatten the term); one image
                # before any pool: the zero predictor
                usable = torch.ones(len(predictions), dtype=torch.bool, device=bands.device)
                usable[:len(pooled)] = self.pool_xx.diagonal().sum() > 0
                sse = torch.where(usable, (target - predictions).pow(2).flatten(1).sum(1), torch.inf).min()
                sse = torch.where(torch.isinf(sse), energy, sse)
                reading = torch.where(energy > 0, sse / energy.clamp_min(1e-30), 1.0)
                term = bounded(sse, energy, sign)
            else:
                reading = term = torch.stack([distance(rms_normalize(target), rms_normalize(p)) for p in predictions]).min()
            if self.training:
                self.remember(bands, coarse)
        return term, reading

    @torch.no_grad()
    def remember(self, bands: torch.Tensor, coarse: torch.Tensor) -> None:
        """Add this batch to the pool, decayed so that it holds ~``pool_images`` images."""
        x, y = as_rows(centred(bands)), as_rows(centred(coarse))
        decay = max(0.0, 1.0 - len(bands) / self.pool_images)
        self.pool_xx.mul_(decay).add_(x.T @ x)
        self.pool_xy.mul_(decay).add_(x.T @ y)

    def fresh_score(self, coarse: torch.Tensor, prediction: torch.Tensor, distance: Distance) -> torch.Tensor:
        y = centred(coarse)
        if distance is l2_distance:
            energy = y.pow(2).sum()
            return torch.where(energy > 0, (y - prediction).pow(2).sum() / energy.clamp_min(1e-30), 1.0)
        return distance(rms_normalize(y), rms_normalize(prediction))


@register_aligner("crossfit_neighbourhood")
class NeighbourhoodCrossFitAligner(CrossFitAligner):
    """``crossfit`` on the 3 x 3 neighbourhood of DWT(f) at each coarse position (zero-padded):
    also charges a map from neighbouring positions (a shifted map), which ``crossfit`` cannot see.
    Still linear and shared by all images. Nine times the features: the pooled fit solves a
    9d x 9d system (d = 4 C_f; ``alignment="ll"``: d = C_f), and with fewer pooled positions
    than features it under-reads (docs/regularizers.md)."""

    NEIGHBOURS = 9

    def __init__(self, in_channels: int, out_channels: int, pool_images: int = POOL_IMAGES) -> None:
        super().__init__(self.NEIGHBOURS * in_channels, out_channels, pool_images)

    def features(self, bands: torch.Tensor) -> torch.Tensor:
        b, d, h, w = bands.shape
        return F.unfold(bands, 3, padding=1).view(b, self.NEIGHBOURS * d, h, w)
