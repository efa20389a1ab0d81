"""Phase 2: inter-scale similarity regularisation of a hierarchical codec's scale latents.

For each pair of adjacent scales, coarser c (C_c x h x w) and finer f (C_f x 2h x 2w), the
finer latent is brought to c's grid by the Haar DWT and an aligner A predicts c from it; the
pair is charged a term t(c, A(DWT(f))), and
    L_inter = sign * delta * sum_pairs t,   sign = -1 "repel" (scales less predictable from
                                            each other, the paper's -delta * L2) or +1 "attract".

The aligner (``--phase2-aligner``) decides who minimises what:

* ``crossfit`` (default, ``crossfit.py``): the best held-out linear predictor of c, fitted on
  this batch's other folds or on a pool of ~64 recent images; logs d = 1 - held-out R^2, charges
  the smooth bound 2 S / (S + E).
* ``crossfit_neighbourhood`` (``crossfit.py``): the same on the 3 x 3 neighbourhood of DWT(f)
  (the aligner's ``features``): also charges a map from neighbouring positions; 9x the features.
* ``adversarial``: the best linear predictor on moving averages (momentum 0.99) of earlier
  batches' moments, held for the encoder; d = l2 of RMS-normalised tensors. Kept for
  reproduction: stale, outrun by an encoder that drifts (rotation toy: d 1.4-1.7 where a fresh
  fit scores ~0; tests/test_regularizers.py).
* ``ridge``: a cross-fitted ridge regression on this batch (blocked folds), differentiable in
  both latents through the fit, no parameters.
* ``joint``: the seed/paper as written: one unit-norm 1x1 conv trained on the same signed
  loss as the encoder. Degenerate under repel: a polyphase component of f is (+-LL +-LH +-HL
  +-HH)/2 of its sub-bands, so A can output -c exactly; measured on HPCM_Tiny the l2 term
  sits at 3.9994 of its bound 4 with latent gradients <= 2.8e-6, and because d(A) = 2 - 2 rho(A)
  with rho(-A) = -rho(A), repel(A) = attract(-A) + const: the sign changes nothing.

``adversarial``, ``ridge`` and ``joint`` compare n(c) with n(P), n = per-sample RMS
normalisation (l2 <= 4, l1 and cosine <= 2): t = d. All fits use one ridge convention (``ridge.py``).
Logged per pair (:meth:`InterScaleRegularizer.sampled`): the reading d on recent training
batches and an independent fresh estimate of it on the same batches.
``scale_latents="new"`` masks the *finer* latent to the positions first coded at its scale:
HPCM's scales are nested (s2 holds s1's values, y holds s2's), so with ``full`` the finer
latent contains the coarse one and the pair partly compares a tensor with itself.
"""
from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .haar import haar_dwt
from .registry import registrar
from .ridge import RIDGE, RIDGES, as_rows, centred_units, cross_fitted, fit_predict, from_rows, ridge_solution

Distance = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
DISTANCES: dict[str, Distance] = {}
ALIGNERS: dict[str, type["Aligner"]] = {}
SIGNS = {"repel": -1.0, "attract": 1.0}
WINDOW_IMAGES = 64      # the recent training images the logged charge and its fresh check share

register_distance = registrar(DISTANCES)
register_aligner = registrar(ALIGNERS)


def pair_names(num_scales: int) -> tuple[str, ...]:
    """Names of the adjacent scale pairs, coarse to fine: s1_s2, s2_s3, ..."""
    return tuple(f"s{i}_s{i + 1}" for i in range(1, num_scales))


def rms_normalize(x: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Scale each sample of ``x`` (B, ...) to RMS <= 1 (exactly 1 unless ~0)."""
    ms = x.pow(2).flatten(1).mean(1).view(-1, *([1] * (x.dim() - 1)))
    return x / torch.sqrt(ms + eps)


@register_distance("l2")
def l2_distance(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Mean squared error; in [0, 4] when every sample of a and b has RMS <= 1."""
    return (a - b).pow(2).mean()


@register_distance("l1")
def l1_distance(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Mean absolute error; in [0, 2] when every sample of a and b has RMS <= 1."""
    return (a - b).abs().mean()


@register_distance("cosine")
def cosine_distance(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """1 - cosine similarity along channels (dim 1), averaged over the rest; in [0, 2]."""
    return (1 - F.cosine_similarity(a, b, dim=1)).mean()


class Aligner(nn.Module):
    """Predicts c from DWT(f); the pair is charged distance(n(c), n(prediction))."""

    def features(self, bands: torch.Tensor) -> torch.Tensor:
        """What the aligner predicts c from, given DWT(f) [B, d, h, w]: the bands themselves here.
        The window of :meth:`InterScaleRegularizer.sampled` holds these, so the fresh estimate
        sees what the charge sees."""
        return bands

    def charge(self, bands: torch.Tensor, coarse: torch.Tensor, distance: Distance,
               sign: str = "repel") -> tuple[torch.Tensor, torch.Tensor]:
        """(the pair's term in the loss, its reading for the log): here both the distance."""
        d = distance(rms_normalize(coarse), rms_normalize(self(bands, coarse)))
        return d, d

    def fresh_score(self, coarse: torch.Tensor, prediction: torch.Tensor, distance: Distance) -> torch.Tensor:
        """What a fresh predictor's centred ``prediction`` scores in this aligner's metric (each
        image's coarse mean added back: these aligners compare uncentred tensors)."""
        return distance(rms_normalize(coarse), rms_normalize(prediction + coarse.mean((-2, -1), keepdim=True)))


@register_aligner("adversarial")
class AdversarialAligner(Aligner):
    """The best linear predictor of c from DWT(f) on moving averages of *earlier* batches, held
    fixed for the encoder. Kept for reproduction: it is stale, and the encoder outruns it by
    drifting (docs/regularizers.md; tests/test_phase2_on_hpcm.py).

    It minimises ||c - A DWT(f) - b||^2 in closed form on exponential moving averages of the
    (detached) moments, then a ridge solve. The prediction uses only earlier batches
    (statistics are updated after use); the encoder gets sign * delta * d through X and c, and
    nothing reaches A. The statistics are buffers, so checkpoints resume exactly. Until a first
    batch is seen the prediction is 0.
    """

    def __init__(self, in_channels: int, out_channels: int, momentum: float = 0.99, ridge: float = RIDGE) -> None:
        super().__init__()
        self.momentum, self.ridge = momentum, ridge
        # moving averages of E[x], E[y], E[x x^T], E[x y^T]; ``seen`` corrects their start-up bias
        for name, shape in (("x", (1, in_channels)), ("y", (1, out_channels)),
                            ("xx", (in_channels, in_channels)), ("xy", (in_channels, out_channels)), ("seen", ())):
            self.register_buffer(name, torch.zeros(shape, dtype=torch.float64))

    def fit(self):
        """(W, x_mean, y_mean): the ridge fit to the averaged moments (all zero before a first batch:
        the moments are 0, and so is W)."""
        seen = self.seen.clamp_min(torch.finfo(self.seen.dtype).tiny)
        x, y, xx, xy = (getattr(self, n) / seen for n in ("x", "y", "xx", "xy"))
        return ridge_solution(x, y, xx, xy, self.ridge)

    def forward(self, bands: torch.Tensor, coarse: torch.Tensor) -> torch.Tensor:
        # no host sync: no branch on ``seen``, no tensor from the host, an unchecked solve
        x, y = as_rows(bands), as_rows(coarse)
        w, x_mean, y_mean = (t.to(x.dtype) for t in self.fit())
        prediction = torch.where(self.seen > 0, (x - x_mean) @ w + y_mean, 0.0)
        if self.training:
            with torch.no_grad():
                xd, yd, m, n = x.detach().double(), y.detach().double(), self.momentum, len(x)
                for name, batch in (("x", xd.mean(0, keepdim=True)), ("y", yd.mean(0, keepdim=True)),
                                    ("xx", xd.T @ xd / n), ("xy", xd.T @ yd / n)):
                    getattr(self, name).mul_(m).add_(batch, alpha=1 - m)
                self.seen.mul_(m).add_(1 - m)
        return from_rows(prediction, coarse)


@register_aligner("ridge")
class RidgeAligner(Aligner):
    """No parameters: c predicted by a cross-fitted ridge (blocked folds, a = ``RIDGE``) on this
    batch, differentiable through the fit as well (unlike ``crossfit``), plus each image's mean."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.register_buffer("ridges", torch.tensor([RIDGE], dtype=torch.float32), persistent=False)

    def forward(self, bands: torch.Tensor, coarse: torch.Tensor) -> torch.Tensor:
        with torch.autocast(bands.device.type, enabled=False):
            c = coarse.float()
            predictions, target = cross_fitted(bands.float(), c, self.ridges, detach_fit=False)
            return (predictions[0] + (c - target)).to(coarse.dtype)   # plus each part's mean


@register_aligner("joint")
class JointAligner(Aligner):
    """Unit-norm 1x1 conv trained on the same signed loss as the encoder (seed/paper as written)."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels, 1, 1))
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))  # nn.Conv2d's default

    def unit_weight(self) -> torch.Tensor:
        return F.normalize(self.weight.flatten(1), dim=1).view_as(self.weight)

    def forward(self, bands: torch.Tensor, coarse: torch.Tensor) -> torch.Tensor:
        return F.conv2d(bands, self.unit_weight())


def _choose(name: str, value: str, allowed) -> str:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, allowed))}; got {value!r}")
    return value


def dwt_features(fine: torch.Tensor, alignment: str) -> torch.Tensor:
    """The finer latent at the coarse grid: its 4 Haar sub-bands stacked, or LL alone."""
    bands = haar_dwt(fine)
    return torch.cat(bands, 1) if alignment == "subbands" else bands[0]


class InterScaleRegularizer(nn.Module):
    """L_inter over scale latents (coarse to fine), one aligner per adjacent pair.

    Args:
        channels: channels of every scale, coarse to fine (HPCM: (M, M, M); DHIC: per scale).
        delta: weight >= 0; 0 turns the term off (zeros returned).
        aligner: "crossfit" | "adversarial" | "ridge" | "joint" (see the module docstring).
        alignment: "subbands" (the paper; aligner 4 C_f -> C_c) or "ll" (C_f -> C_c).
        distance: "l2" | "l1" | "cosine" on RMS-normalised tensors.
        sign: "repel" | "attract".
        scale_latents: "new" masks the finer latent to its new positions (needs masks;
            models without nested scales pass none and every position counts), "full" not.
    """

    def __init__(self, channels: Sequence[int], delta: float = 0.1, aligner: str = "crossfit",
                 alignment: str = "subbands", distance: str = "l2", sign: str = "repel",
                 scale_latents: str = "new") -> None:
        super().__init__()
        if not delta >= 0:
            raise ValueError(f"delta must be >= 0, got {delta}")
        if len(channels) < 2:
            raise ValueError(f"need >= 2 scales, got {len(channels)}")
        self.channels = tuple(int(c) for c in channels)
        self.delta = float(delta)
        self.aligner = _choose("aligner", aligner, ALIGNERS)
        self.alignment = _choose("alignment", alignment, ("subbands", "ll"))
        self.distance = _choose("distance", distance, DISTANCES)
        self.sign = _choose("sign", sign, SIGNS)
        self.scale_latents = _choose("scale_latents", scale_latents, ("full", "new"))
        self.weight = SIGNS[sign] * self.delta
        self.pair_names = pair_names(len(channels))
        bands = 4 if alignment == "subbands" else 1
        self.aligners = nn.ModuleList(ALIGNERS[aligner](bands * fine, coarse)
                                      for coarse, fine in zip(self.channels[:-1], self.channels[1:]))
        self.windows: list[deque] = [deque() for _ in self.pair_names]   # recent batches, for :meth:`sampled`

    def forward(self, latents: Sequence[torch.Tensor], new_masks: Sequence[torch.Tensor] | None = None
                ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """(L_inter = sign * delta * sum of the pairs' terms, each pair's reading detached for logging)."""
        latents = self._checked(latents)
        if self.delta == 0:
            zero = latents[0].new_zeros(())
            return zero, {name: zero for name in self.pair_names}
        terms, readings = [], {}
        for name, aligner, window, coarse, fine in zip(
                self.pair_names, self.aligners, self.windows, latents[:-1],
                pairs_fine(latents, new_masks if self.scale_latents == "new" else None)):
            bands = aligner.features(dwt_features(fine, self.alignment))
            term, reading = aligner.charge(bands, coarse, DISTANCES[self.distance], self.sign)
            terms.append(term)
            readings[name] = reading.detach()
            if self.training:
                window.append((coarse.detach(), bands.detach(), readings[name]))
                while len(window) > 1 and sum(len(c) for c, _, _ in window) - len(window[0][0]) >= 2 * WINDOW_IMAGES:
                    window.popleft()
        return self.weight * torch.stack(terms).sum(), readings

    @torch.no_grad()
    def sampled(self) -> dict[str, float]:
        """Per pair, over the same recent training batches of the epoch (its last ~``WINDOW_IMAGES`` images):
        ``inter_scale_<pair>``, the mean reading of the charge on each batch when it was trained;
        ``inter_scale_fresh_<pair>``, an independent estimate of the same quantity
        (:func:`fresh_estimate`); ``inter_scale_gap_<pair>`` = fresh - charge. A charge the
        encoder cannot outrun stays close to it. Empty before training. Called once an epoch: it
        empties the window, so each epoch is read on its own batches and a resumed run (whose
        checkpoint holds no window) logs what an uninterrupted one does."""
        out = {}
        for name, aligner, window in zip(self.pair_names, self.aligners, self.windows):
            if not window:
                continue
            window = list(window)
            sizes = [len(c) for c, _, _ in window]
            scored = [k for k in range(len(window)) if sum(sizes[k:]) <= WINDOW_IMAGES] or [len(window) - 1]
            charge = float(torch.stack([window[k][2] for k in scored]).mean())
            fresh = fresh_estimate(aligner, window, scored, DISTANCES[self.distance])
            out.update({f"inter_scale_{name}": charge, f"inter_scale_fresh_{name}": fresh,
                        f"inter_scale_gap_{name}": fresh - charge})
        for window in self.windows:
            window.clear()
        return out

    def _checked(self, latents: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        if len(latents) != len(self.channels):
            raise ValueError(f"expected {len(self.channels)} scale latents, got {len(latents)}")
        for y, c in zip(latents, self.channels):
            if y.dim() != 4 or y.shape[1] != c:
                raise ValueError(f"scale latent must be [B, {c}, H, W], got {tuple(y.shape)}")
        for coarse, fine in zip(latents[:-1], latents[1:]):
            if fine.shape[-2:] != (2 * coarse.shape[-2], 2 * coarse.shape[-1]):
                raise ValueError(f"each scale must double the previous one, got {tuple(coarse.shape)} -> {tuple(fine.shape)}")
        return list(latents)

    def extra_repr(self) -> str:
        return (f"channels={self.channels}, delta={self.delta}, aligner={self.aligner!r}, "
                f"alignment={self.alignment!r}, distance={self.distance!r}, sign={self.sign!r}, "
                f"scale_latents={self.scale_latents!r}")


def fresh_estimate(aligner: Aligner, window: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]],
                   scored: list[int], distance: Distance) -> float:
    """Mean over the ``scored`` batches of the window of the best distance a float64 SVD ridge (one
    per strength in ``RIDGES``) scores on a batch when fitted on the ``WINDOW_IMAGES`` images before
    it (equally weighted, where the charge decays its pool) or, with two images or more, on the
    batch's other images (leave one out, where the charge holds out i mod 4): the charge's
    information, by another solver, other folds and other weights."""
    units = [centred_units(list(b), list(c)) for c, b, _ in window]
    grid = torch.tensor(RIDGES, dtype=torch.float64, device=units[0][0][0].device)
    scores = []
    for k in scored:
        batch = units[k]
        candidates = [leave_one_out(batch, grid)] if len(batch) >= 2 else []
        earlier = [u for previous in units[:k] for u in previous][-WINDOW_IMAGES:]
        if earlier:
            candidates.append(fit_predict(earlier, batch, grid))
        if not candidates:           # the first single image: the zero predictor
            candidates.append([torch.zeros(len(RIDGES), *y.shape, dtype=y.dtype, device=y.device) for _, y in batch])
        c = window[k][0].float()
        scores.append(torch.stack([aligner.fresh_score(c, torch.stack(p, 1)[g].permute(0, 3, 1, 2).float(), distance)
                                   for p in candidates for g in range(len(RIDGES))]).min())
    return float(torch.stack(scores).mean())


def leave_one_out(units: list, grid: torch.Tensor) -> list[torch.Tensor]:
    """Each image's predictions [G, h, w, m] by a fit on all the other images."""
    return [fit_predict(units[:i] + units[i + 1:], [u], grid)[0] for i, u in enumerate(units)]


def pairs_fine(latents: Sequence[torch.Tensor], new_masks: Sequence[torch.Tensor] | None) -> list[torch.Tensor]:
    """The finer latent of every pair, masked to its new positions when masks are given."""
    if new_masks is None:
        return list(latents[1:])
    if len(new_masks) != len(latents):
        raise ValueError("need one new-position mask per scale latent")
    return [y * m.to(y.dtype) for y, m in zip(latents[1:], new_masks[1:])]
