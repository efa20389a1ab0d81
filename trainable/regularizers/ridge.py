"""Linear predictability of a coarse scale from the finer one: closed-form ridge regression.

Rows are latent positions, columns channels: X = DWT bands of the finer latent at the coarse
grid [N, d], Y = the coarse latent [N, m]. One ridge convention everywhere (the aligners and
the validation measure): with X, Y centred,
    W = (X^T X + lambda I)^-1 X^T Y,    lambda = a * tr(X^T X) / d,
i.e. ``a`` is relative to the mean feature energy; ``a`` is ``RIDGE`` for the fixed-ridge
aligners and is chosen from ``RIDGES`` where a fit picks its own.

Every fit is scored out of sample on *blocked* folds: whole images (the image of batch index
i is in fold i mod K, K = min(images, MAX_FOLDS)), or, for a single image, contiguous spatial
halves. Interleaved folds put neighbouring (correlated) positions on both sides, and with fewer
positions than features an in-sample fit is perfect: both read smooth independent fields as
highly predictable.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

RIDGE = 1e-2                      # a of the fixed-ridge aligners (adversarial, ridge)
RIDGES = (1e-2, 1e-1, 1.0, 10.0)  # a's candidates where a fit chooses its own (crossfit, the measure)
MAX_FOLDS = 4
Index = tuple[slice, ...]
Unit = tuple[torch.Tensor, torch.Tensor]   # (X [h, w, d], Y [h, w, m]) of one image or block
FeatureMap = Callable[[list[Unit]], list[Unit]]   # units -> the same units with new X
FeatureFit = Callable[[list[Unit]], FeatureMap]   # fit units -> the feature map fitted on them


def as_rows(t: torch.Tensor) -> torch.Tensor:
    """[B, C, h, w] -> [B*h*w, C]."""
    return t.permute(0, 2, 3, 1).reshape(-1, t.shape[1])


def from_rows(rows: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`as_rows` for a tensor shaped like ``like`` (channels may differ)."""
    b, _, h, w = like.shape
    return rows.reshape(b, h, w, -1).permute(0, 3, 1, 2)


def centred(t: torch.Tensor) -> torch.Tensor:
    """Each image's channels minus their spatial mean ([B, C, h, w]): mean shifts are not structure."""
    return t - t.mean((-2, -1), keepdim=True)


def ridge_lambda(x: torch.Tensor, a: torch.Tensor | float) -> torch.Tensor:
    """lambda = a * tr(X^T X) / d for centred rows ``x`` [N, d] (plus a floor against all-zero X)."""
    return a * x.pow(2).sum() / x.shape[1] + 1e-12


def ridge_solution(x_mean: torch.Tensor, y_mean: torch.Tensor, xx: torch.Tensor, xy: torch.Tensor,
                   ridge: float = RIDGE):
    """(W, x_mean, y_mean) from first and second moments: xx = E[x x^T], xy = E[x y^T]."""
    cov_xx = xx - x_mean.T @ x_mean
    cov_xy = xy - x_mean.T @ y_mean
    d = cov_xx.shape[0]
    lam = ridge * cov_xx.diagonal().sum() / d + 1e-12
    eye = torch.eye(d, dtype=cov_xx.dtype, device=cov_xx.device)
    return torch.linalg.solve_ex(cov_xx + lam * eye, cov_xy)[0], x_mean, y_mean   # unchecked: no host sync


def ridge_weights(x: torch.Tensor, y: torch.Tensor, ridges: torch.Tensor) -> torch.Tensor:
    """W [G, d, m] of the ridge regressions of centred rows ``y`` [N, m] on ``x`` [N, d], one per
    relative strength in ``ridges`` [G]. Primal or dual (kernel) form, whichever system is smaller
    (the same W)."""
    n, d = x.shape
    if n >= d:
        return moment_weights(x.T @ x, x.T @ y, ridges)
    lam = ridge_lambda(x, ridges).view(-1, 1, 1)
    system = x @ x.T + lam * torch.eye(n, dtype=x.dtype, device=x.device)
    factor = torch.linalg.cholesky_ex(system)[0]
    return x.T @ torch.cholesky_solve(y.expand(len(ridges), n, -1), factor)


def moment_weights(xx: torch.Tensor, xy: torch.Tensor, ridges: torch.Tensor) -> torch.Tensor:
    """W [G, d, m] from summed moments xx = X^T X [d, d], xy = X^T Y [d, m], one per relative ridge.
    Cholesky without error checks: no host sync; lambda > 0 keeps it positive definite."""
    d = xx.shape[0]
    lam = (ridges * xx.diagonal().sum() / d + 1e-12).view(-1, 1, 1)     # = ridge_lambda of the rows
    factor = torch.linalg.cholesky_ex(xx + lam * torch.eye(d, dtype=xx.dtype, device=xx.device))[0]
    return torch.cholesky_solve(xy.expand(len(ridges), d, -1), factor)


def fold_parts(batch: int, h: int, w: int) -> list[Index]:
    """The blocked folds of a [B, C, h, w] tensor as indices: images i mod K, or, for one image,
    its top/bottom (left/right when h = 1) halves; one 1 x 1 image is a single part."""
    if batch >= 2:
        k = min(batch, MAX_FOLDS)
        return [(slice(i, None, k),) for i in range(k)]
    dim = 2 if h >= 2 else 3 if w >= 2 else None
    if dim is None:
        return [(slice(None),)]
    n = (h, w)[dim - 2]
    return [(slice(None),) * dim + (slice(0, n // 2),), (slice(None),) * dim + (slice(n // 2, None),)]


def centred_parts(t: torch.Tensor, parts: list[Index]) -> torch.Tensor:
    """``t`` with every image centred, and a single image's halves each on their own: a mean over
    the whole image ties the halves together (independent smooth fields read R^2 0.26, not 0.14)."""
    if t.shape[0] >= 2 or len(parts) < 2:
        return centred(t)
    return torch.cat([centred(t[p]) for p in parts], len(parts[0]) - 1)


def cross_fitted(bands: torch.Tensor, coarse: torch.Tensor, ridges: torch.Tensor, detach_fit: bool
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """(held-out predictions [G, B, C_c, h, w], centred targets [B, C_c, h, w]) of ``coarse`` from
    ``bands``, both centred per fold part (:func:`centred_parts`): each fold predicted by a fit on
    the other folds, one per ridge in ``ridges``.

    ``detach_fit``: the fitted W is a constant (the envelope gradient: only the held-out rows
    carry gradient); otherwise gradients also flow through the fit."""
    parts = fold_parts(*bands.shape[:1], *bands.shape[-2:])
    x, y = centred_parts(bands, parts), centred_parts(coarse, parts)
    out = x.new_zeros(len(ridges), *y.shape)     # stays the zero predictor where no fold can be fitted
    for held in parts if len(parts) >= 2 else []:
        fits = [p for p in parts if p is not held]
        xf = torch.cat([as_rows(x[i]) for i in fits])
        yf = torch.cat([as_rows(y[i]) for i in fits])
        if detach_fit:
            xf, yf = xf.detach(), yf.detach()
        w = ridge_weights(xf, yf, ridges)
        target = y[held]
        out[(slice(None), *held)] = torch.stack([from_rows(as_rows(x[held]) @ wg, target) for wg in w])
    return out, y


def centred_units(features: Sequence[torch.Tensor], coarse: Sequence[torch.Tensor]) -> list[Unit]:
    """Per image (X [h, w, d], Y [h, w, m]) float64, each centred over its positions, from
    features [d, h, w] and coarse latents [m, h, w]."""
    units = []
    for f, c in zip(features, coarse):
        x, y = f.detach().double().permute(1, 2, 0), c.detach().double().permute(1, 2, 0)
        units.append((x - x.mean((0, 1)), y - y.mean((0, 1))))
    return units


def held_out_predictions(images: Sequence[Unit], ridges: Sequence[float] | None = None,
                         groups: Sequence[int] | None = None, features: FeatureFit | None = None,
                         choices: Sequence[float] = RIDGES) -> list[torch.Tensor]:
    """Each image's centred Y predicted by a ridge fitted on the other folds: [h, w, m] with the
    strength chosen from ``choices`` by an inner cross-validation on those folds (``ridges`` None),
    else [G, h, w, m], one per relative strength in ``ridges``. float64, via one SVD per fit.
    Folds: image i in fold i mod K, or, with ``groups``, group g (a batch, say) in fold g mod K.
    ``features``: fitted on a fit set, returns the map that gives every unit its features; it is
    refitted on every (inner) fit set, so a data-driven feature is never chosen on held-out rows."""
    units, join = blocked_units(list(images))
    if not units:          # one image of one position: the zero predictor
        y = images[0][1]
        return [torch.zeros_like(y) if ridges is None else y.new_zeros(len(ridges), *y.shape)]
    labels = list(groups) if groups is not None and len(units) == len(images) else list(range(len(units)))
    rank = {g: i for i, g in enumerate(dict.fromkeys(labels))}    # groups 0, 2 -> folds 0, 1
    labels = [rank[g] for g in labels]
    k = min(len(set(labels)), MAX_FOLDS)
    predictions: list[torch.Tensor] = [torch.empty(0)] * len(units)
    for fold in range(k):
        held = [i for i in range(len(units)) if labels[i] % k == fold]
        fit = [units[i] for i in range(len(units)) if labels[i] % k != fold]
        grid = torch.tensor([_inner_ridge(fit, choices, features)] if ridges is None else list(ridges),
                            dtype=torch.float64, device=units[0][0].device)
        for i, p in zip(held, _featured_fit_predict(fit, [units[i] for i in held], grid, features)):
            predictions[i] = p[0] if ridges is None else p
    return join(predictions)


def blocked_units(units: list[Unit]):
    """At least two folds' worth of units: a single image is split into two contiguous halves.
    Returns (units, a function mapping per-unit predictions back to per-image ones)."""
    if len(units) >= 2:
        return units, lambda preds: preds
    x, y = units[0]
    dim = 0 if x.shape[0] >= 2 else 1
    if x.shape[dim] < 2:   # one position: nothing to fit on, the zero predictor
        return [], None
    half = x.shape[dim] // 2
    halves = [(x.narrow(dim, s, n), y.narrow(dim, s, n)) for s, n in ((0, half), (half, x.shape[dim] - half))]
    return halves, lambda preds: [torch.cat(preds, dim - 3)]   # predictions end in [h, w, m]


def _inner_ridge(units: list[Unit], choices: Sequence[float] = RIDGES,
                 features: FeatureFit | None = None) -> float:
    """The relative ridge a from ``choices`` with the lowest pooled held-out error on ``units``."""
    units, _ = blocked_units(units)
    if not units:          # one position to fit on: nothing to choose with
        return RIDGE
    k = min(len(units), MAX_FOLDS)
    device = units[0][0].device
    ridges = torch.tensor(choices, dtype=torch.float64, device=device)
    sse = torch.zeros(len(choices), dtype=torch.float64, device=device)
    for fold in range(k):
        held = [units[i] for i in range(len(units)) if i % k == fold]
        fit = [units[i] for i in range(len(units)) if i % k != fold]
        for (_, y), p in zip(held, _featured_fit_predict(fit, held, ridges, features)):
            sse += (p - y).pow(2).flatten(1).sum(1)
    return choices[int(sse.argmin())]


def _featured_fit_predict(fit: list[Unit], held: list[Unit], ridges: torch.Tensor,
                          features: FeatureFit | None) -> list[torch.Tensor]:
    """:func:`fit_predict` on the features fitted on ``fit`` (the units themselves without ``features``)."""
    if features is None:
        return fit_predict(fit, held, ridges)
    mapped = features(fit)
    return fit_predict(mapped(fit), mapped(held), ridges)


def fit_predict(fit: list[Unit], held: list[Unit], ridges: torch.Tensor) -> list[torch.Tensor]:
    """Predictions [G, h, w, m] for every held unit, one per relative ridge, from one SVD of the fit rows."""
    x = torch.cat([u[0].reshape(-1, u[0].shape[-1]) for u in fit])
    y = torch.cat([u[1].reshape(-1, u[1].shape[-1]) for u in fit])
    u, s, vh = torch.linalg.svd(x, full_matrices=False)
    gain = s / (s.pow(2) + ridge_lambda(x, ridges).view(-1, 1))           # [G, r]
    core = gain.unsqueeze(-1) * (u.T @ y)                                   # [G, r, m]
    return [(hx.reshape(-1, hx.shape[-1]) @ vh.T @ core).reshape(len(ridges), *hy.shape) for hx, hy in held]
