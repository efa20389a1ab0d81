"""How many trials run at once: ``--max-concurrent``, else what the cluster fits.

Derived from the resources Ray reports when the search starts (``ray.cluster_resources()``):
for every resource a trial asks for (CPU, GPU, custom ones), the cluster's total divided by
the trial's amount, rounded down; the smallest of these. 8 GPUs and 1 GPU per trial: 8 trials;
2 GPUs per trial: 4; ½ GPU per trial: 16 (CPUs permitting). A cluster that cannot hold one
trial is refused with one line, not left waiting. An autoscaling cluster's later nodes are
not counted: pass ``--max-concurrent`` there.
"""
from __future__ import annotations

import math

from trainable.errors import InputError

from .config import SearchConfig

def trial_request(config: SearchConfig) -> dict[str, float]:
    """What one trial asks Ray for, in Ray's resource names."""
    request = {"CPU": config.cpus_per_trial, "GPU": config.gpus_per_trial, **config.trial_resources}
    return {name: float(amount) for name, amount in request.items() if amount > 0}


def fitting_trials(request: dict[str, float], resources: dict[str, float]) -> int:
    """Trials of ``request`` that fit in ``resources`` at once (0 when not even one does)."""
    fits = [math.floor(resources.get(name, 0.0) / amount + 1e-9) for name, amount in request.items()]
    return min(fits) if fits else 1


def max_concurrent(config: SearchConfig, resources: dict[str, float]) -> int:
    """``config.max_concurrent`` when given, else the trials the cluster's ``resources`` fit."""
    if config.max_concurrent is not None:
        return config.max_concurrent
    request = trial_request(config)
    n = fitting_trials(request, resources)
    if n < 1:
        short = {k: v for k, v in request.items() if resources.get(k, 0.0) < v}
        have = ", ".join(f"{k} {resources.get(k, 0.0):g}" for k in short)
        raise InputError(f"a trial asks for {', '.join(f'{k} {v:g}' for k, v in short.items())} "
                         f"but the cluster has {have}; lower --cpus-per-trial/--gpus-per-trial or add nodes")
    return n


def cluster_max_concurrent(config: SearchConfig) -> int:
    """:func:`max_concurrent` from the running Ray cluster's resources (Ray must be initialised)."""
    import ray

    resources = ray.cluster_resources()
    n = max_concurrent(config, resources)
    if config.max_concurrent is None:
        have = ", ".join(f"{k} {resources.get(k, 0.0):g}" for k in trial_request(config))
        print(f"trials at once: {n} (the cluster has {have}; --max-concurrent to set it)")
    return n
