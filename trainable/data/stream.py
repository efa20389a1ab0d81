"""One training batch stream per trial: which images and crops every step of every epoch sees.

Epoch e's batches are a pure function of (seed, e): passes over the shuffled training set
(full batches only, unless the set is smaller than one batch), each item paired with a crop
seed. So the crops do not depend on the number of loader workers, on resuming, or on what
else drew from torch's RNG, and one loader, created once per trial and iterated for all its
epochs, serves all of a trial's λ models (its workers live as long as the trial).
"""
from __future__ import annotations

import os
from typing import Iterator

import torch
from torch.utils.data import DataLoader, Sampler

from .folder import ImageFolder


def epoch_batches(n: int, batch_size: int, steps: int, seed: int, epoch: int) -> list[list[tuple[int, int]]]:
    """The ``steps`` batches of ``epoch``, as lists of (image index, crop seed)."""
    g = torch.Generator().manual_seed((seed * 7919 + epoch) % 2**31)
    size = min(batch_size, n)
    out: list[list[tuple[int, int]]] = []
    while len(out) < steps:
        items = list(zip(torch.randperm(n, generator=g).tolist(), torch.randint(0, 2**62, (n,), generator=g).tolist()))
        out += [items[i:i + size] for i in range(0, n - size + 1, size)]
    return out[:steps]


class EpochBatches(Sampler):
    """Every batch from ``start_epoch`` on, epoch after epoch (an endless batch sampler)."""

    def __init__(self, n: int, batch_size: int, steps: int, seed: int, start_epoch: int):
        super().__init__()
        self.n, self.batch_size, self.steps, self.seed, self.start_epoch = n, batch_size, steps, seed, start_epoch

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        epoch = self.start_epoch
        while True:
            yield from epoch_batches(self.n, self.batch_size, self.steps, self.seed, epoch)
            epoch += 1


def default_workers(cpus: float | None = None) -> int:
    """Loader workers for a process with ``cpus`` CPUs (default: this process's): one CPU
    drives the training, the others decode."""
    if cpus is None:
        cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(0, min(int(cpus) - 1, 16))


def batch_stream(dataset: ImageFolder, batch_size: int, steps: int, seed: int, start_epoch: int,
                 workers: int, pin_memory: bool) -> Iterator[torch.Tensor]:
    """Training batches [B,3,p,p] from ``start_epoch`` on (``steps`` per epoch), endlessly."""
    loader = DataLoader(dataset, batch_sampler=EpochBatches(len(dataset), batch_size, steps, seed, start_epoch),
                        num_workers=workers, pin_memory=pin_memory, prefetch_factor=4 if workers else None)
    return iter(loader)
