"""Evaluation jobs as Ray tasks: one task per (trial, λ) model, at most ``workers`` at once.

A job loads one final model and codes its test images (``analysis.evaluate.code_images``): the
forward passes run on the task's GPU share when the cluster has GPUs, the rANS coding on its CPU.
Each task asks for 1 CPU and, with GPUs, ``min(1, GPUs / workers)`` of them, so ``workers``
models share the GPUs evenly. Tasks read the checkpoints and the test images at the driver's
paths (one machine, or the shared storage the search wrote to) and return their rows to the
driver, which merges them as they arrive (``done``): results are those of the sequential path,
in any completion order. A failed task stops the submissions; the tasks under way finish and
are merged, then the first failure is raised as one line (a rerun resumes).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

from .errors import AnalysisError

Job = tuple[dict, float, list]                      # (trial record, λ, images to code)
Code = Callable[[dict, float, list, Any], list[dict]]


def run_on_ray(jobs: Sequence[Job], code: Code, workers: int, device: str, address: str | None,
               done: Callable[[Job, list[dict]], None]) -> None:
    """``done(job, code(*job, device))`` for every job, computed by Ray tasks (see the module docstring)."""
    import ray

    started = not ray.is_initialized()
    if started:
        target = address or os.environ.get("RAY_ADDRESS") or "local"
        local = {"num_cpus": workers, "include_dashboard": False} if target == "local" else {}
        ray.init(address=target, log_to_driver=False, configure_logging=False, **local)
    try:
        share = gpu_share(ray.cluster_resources(), workers, device)
        task = ray.remote(_run).options(num_cpus=1, **share)
        where = "cuda" if share else "cpu"
        pending: dict = {}
        queue = list(jobs)
        failure = None
        while queue or pending:
            while queue and len(pending) < workers:
                job = queue.pop(0)
                pending[task.remote(code, *job, where)] = job
            ready, _ = ray.wait(list(pending), num_returns=1)
            job = pending.pop(ready[0])
            try:
                done(job, ray.get(ready[0]))
            except ray.exceptions.RayTaskError as exc:   # the tasks under way still finish and are saved
                cause = str(getattr(exc, "cause", None) or exc).strip().splitlines()
                failure = failure or (f"{job[0]['configuration']} seed {job[0]['seed']} λ={job[1]:g} failed in a "
                                      f"Ray task: {cause[-1] if cause else type(exc).__name__}")
                queue = []
        if failure:
            raise AnalysisError(f"{failure} (the models finished are saved; run again to resume)")
    finally:
        if started:
            ray.shutdown()


def gpu_share(cluster: dict[str, float], workers: int, device: str) -> dict[str, float]:
    """Each task's ``num_gpus`` on a cluster with ``cluster`` resources: none for ``cpu`` or without GPUs."""
    gpus = cluster.get("GPU", 0)
    if device == "cpu":
        return {}
    if device.startswith("cuda") and not gpus:
        raise AnalysisError(f"--device {device}: the Ray cluster has no GPU")
    return {"num_gpus": min(1.0, gpus / workers)} if gpus else {}


def _run(code: Code, trial: dict, lmbda: float, images: list, device: str) -> list[dict]:
    import torch

    return code(trial, lmbda, images, torch.device(device))
