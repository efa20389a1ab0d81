"""Linear predictability of a coarse scale from the finer one: closed-form ridge regression.

Rows are latent positions, columns channels: X = DWT bands of the finer latent at the coarse
grid [N, d], Y = the coarse latent [N, m]. With centred X, Y and a ridge scaled to the data,
    W = (X^T X + a tr(X^T X)/d I)^-1 X^T Y,
the prediction is X W (plus the means). Everything is differentiable in X and Y, so the
``ridge`` aligner can send gradients to both latents. Fits are always scored out of sample
(two interleaved folds), because with fewer positions than features an in-sample fit is
perfect and says nothing.
"""
from __future__ import annotations

import torch

RIDGE = 1e-2   # a: ridge relative to the mean feature variance


def as_rows(t: torch.Tensor) -> torch.Tensor:
    """[B, C, h, w] -> [B*h*w, C]."""
    return t.permute(0, 2, 3, 1).reshape(-1, t.shape[1])


def from_rows(rows: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`as_rows` for a tensor shaped like ``like`` (channels may differ)."""
    b, _, h, w = like.shape
    return rows.reshape(b, h, w, -1).permute(0, 3, 1, 2)


def ridge_solution(x_mean: torch.Tensor, y_mean: torch.Tensor, xx: torch.Tensor, xy: torch.Tensor,
                   ridge: float = RIDGE):
    """(W, x_mean, y_mean) from first and second moments: xx = E[x x^T], xy = E[x y^T]."""
    cov_xx = xx - x_mean.T @ x_mean
    cov_xy = xy - x_mean.T @ y_mean
    d = cov_xx.shape[0]
    scale = cov_xx.diagonal().sum() / d
    eye = torch.eye(d, dtype=cov_xx.dtype, device=cov_xx.device)
    return torch.linalg.solve(cov_xx + (ridge * scale + 1e-12) * eye, cov_xy), x_mean, y_mean


def ridge_fit(x: torch.Tensor, y: torch.Tensor, ridge: float = RIDGE):
    """(W, x_mean, y_mean) of the ridge regression of rows ``y`` on rows ``x``."""
    n = len(x)
    return ridge_solution(x.mean(0, keepdim=True), y.mean(0, keepdim=True), x.T @ x / n, x.T @ y / n, ridge)


def ridge_predict(fit, x: torch.Tensor) -> torch.Tensor:
    w, x_mean, y_mean = fit
    return (x - x_mean) @ w + y_mean


def folds(n: int, device: torch.device | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Two interleaved folds of row indices (even / odd rows, i.e. alternate positions)."""
    index = torch.arange(n, device=device)
    return index[0::2], index[1::2]


def cross_fitted_prediction(x: torch.Tensor, y: torch.Tensor, ridge: float = RIDGE) -> torch.Tensor:
    """Each fold's rows predicted by a ridge fitted on the other fold."""
    a, b = folds(len(x), x.device)
    out = torch.empty_like(y)
    out[a] = ridge_predict(ridge_fit(x[b], y[b], ridge), x[a])
    out[b] = ridge_predict(ridge_fit(x[a], y[a], ridge), x[b])
    return out


def held_out_r2(x: torch.Tensor, y: torch.Tensor, ridge: float = RIDGE) -> float:
    """R^2 on one fold of a ridge fitted on the other (pooled over channels; <= 1, can be < 0)."""
    a, b = folds(len(x), x.device)
    x, y = x.double(), y.double()
    fit = ridge_fit(x[a], y[a], ridge)
    residual = (y[b] - ridge_predict(fit, x[b])).pow(2).sum()
    total = (y[b] - fit[2]).pow(2).sum()
    return float(1 - residual / total) if total > 0 else float("nan")
