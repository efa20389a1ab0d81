"""Small timing helpers shared by the benchmarks: interleaved repetitions, median."""
from __future__ import annotations

import statistics
import time
from typing import Callable

import torch


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def interleaved_medians(fns: dict[str, Callable[[], None]], repeats: int, warmup: int = 1,
                        device: torch.device = torch.device("cpu")) -> dict[str, float]:
    """Median seconds per call of each function, alternating calls so machine noise hits all alike."""
    times: dict[str, list[float]] = {name: [] for name in fns}
    for i in range(warmup + repeats):
        for name, fn in fns.items():
            sync(device)
            start = time.perf_counter()
            fn()
            sync(device)
            if i >= warmup:
                times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}
