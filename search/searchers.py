"""Search algorithms behind one function, plus the Optuna fix for early-stopped trials."""
from __future__ import annotations

from ray import tune
from ray.tune.search import BasicVariantGenerator, ConcurrencyLimiter
from ray.tune.search.optuna import OptunaSearch

from spaces import SearchSpace
from trainable.errors import InputError

SEARCHERS = ("optuna", "random", "grid")


class FidelityAwareOptunaSearch(OptunaSearch):
    """Tells Optuna that trials ASHA stopped early were *pruned*, not complete.

    Ray's OptunaSearch reports the last (early-epoch) value as COMPLETE, so TPE would
    rank an epoch-2 loss against epoch-50 losses. Pruned trials keep TPE's model
    built from full-fidelity results only.
    """

    def __init__(self, *args, max_epochs: int, **kwargs):
        super().__init__(*args, **kwargs)
        self.max_epochs = max_epochs

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False):
        stopped_early = bool(result) and not error and result.get("epoch", self.max_epochs) < self.max_epochs
        super().on_trial_complete(trial_id, None if stopped_early else result, error)


def to_tune(space: SearchSpace, grid: bool, derive) -> dict:
    """Tune distributions for the space's searched parameters (``derive`` maps derived values)."""
    out = {}
    for key, p in space.searched.items():
        name, convert = derive(key)
        if grid:
            out[name] = tune.grid_search(sorted({convert(v) for v in p.candidates()}, key=str))
        elif p.kind == "choice":
            out[name] = tune.choice(sorted({convert(v) for v in p.values}, key=str))
        elif name != key:
            raise InputError(f"{key} must be a choice parameter")
        elif p.kind == "uniform":
            out[name] = tune.uniform(p.low, p.high)
        elif p.kind == "loguniform":
            out[name] = tune.loguniform(p.low, p.high)
        else:
            out[name] = tune.randint(int(p.low), int(p.high) + 1)
    return out


def build_searcher(kind: str, seed: int, metric: str, max_epochs: int, max_concurrent: int,
                   off_point: dict | None):
    """Optuna TPE (seeded), random or grid search; the "off" point is always evaluated first."""
    points = [off_point] if off_point else None
    if kind == "optuna":
        searcher = FidelityAwareOptunaSearch(metric=metric, mode="min", seed=seed, points_to_evaluate=points,
                                             max_epochs=max_epochs)
        return ConcurrencyLimiter(searcher, max_concurrent=max_concurrent)
    if kind == "random":
        return BasicVariantGenerator(points_to_evaluate=points, random_state=seed, max_concurrent=max_concurrent)
    return BasicVariantGenerator(max_concurrent=max_concurrent)   # grid: "off" is one of the grid points
