"""An experiment's plan, built and checked before Ray starts: space, base TrainConfig, λs,
configurations (enumerated spaces) or a sampled space (Optuna), searcher, scheduler, grace.

Everything a user can get wrong fails here, as one :class:`InputError` line.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from spaces import Configuration, SearchSpace, get_space
from trainable.config import TrainConfig
from trainable.data import SPLITS, resolve_dataset, verify_dataset
from trainable.errors import InputError

from .config import SearchConfig


def is_uri(path: str) -> bool:
    return "://" in path


@dataclass(frozen=True)
class Plan:
    config: SearchConfig
    space: SearchSpace
    base: TrainConfig                       # every setting but λ and the configuration's overrides
    lambdas: tuple[float, ...]
    off: Configuration
    configurations: tuple[Configuration, ...] | None   # enumerated spaces; None: sampled (Optuna / random)
    searcher: str                           # grid | optuna | random
    scheduler: str                          # fifo | asha
    grace: int                              # ASHA grace period, covering the longest Phase 1
    datasets: dict[str, str | None]

    @property
    def name(self) -> str:
        return self.config.name or self.space.name

    @property
    def root(self) -> str:
        """STORAGE/NAME: a local absolute path, or a URI."""
        storage = self.config.storage_path
        if is_uri(storage):
            return f"{storage.rstrip('/')}/{self.name}"
        return str(Path(storage).expanduser().resolve() / self.name)

    @property
    def storage(self) -> str:
        storage = self.config.storage_path
        return storage if is_uri(storage) else str(Path(storage).expanduser().resolve())

    @property
    def seeds(self) -> tuple[int, ...]:
        return tuple(self.config.seed + i for i in range(self.config.seeds))

    def configuration(self, values: dict[str, Any]) -> Configuration:
        return self.space.configuration(values, self.base, self.config.max_epochs)

    def trial_params(self, conf: Configuration, seed: int) -> dict[str, Any]:
        """A trial's config (params.json): TrainConfig fields but λ and save_path, + configuration, is_off, lambdas."""
        params = {k: v for k, v in self.base.to_dict().items() if k not in ("lmbda", "save_path")}
        params.update(conf.overrides)
        params.update(conf.params(), seed=seed, lambdas=list(self.lambdas))
        return params

    def record(self) -> dict[str, Any]:
        """experiment.json."""
        return {**self.config.to_dict(), "name": self.name, "space": self.space.to_dict(),
                "lambdas": list(self.lambdas), "seeds": self.config.seeds, "seed_values": list(self.seeds),
                "max_epochs": self.config.max_epochs, "model": self.base.model_name, "metric": self.base.metric,
                "searcher": self.searcher, "scheduler": self.scheduler, "grace_epochs": self.grace,
                "off": self.off.id, "datasets": self.datasets,
                "configurations": [c.id for c in self.configurations] if self.configurations else None}


def make_plan(config: SearchConfig, verify_data: bool = True) -> Plan:
    """Resolve and check everything; verifies the datasets (cached manifest) unless told not to."""
    space = get_space(config.space)
    model = _model(config, space)
    lambdas = config.lambdas or space.lambdas
    base = TrainConfig(model_name=model, train_dataset=config.train_dataset, test_dataset=config.test_dataset,
                       lmbda=lambdas[0], metric=space.metric, epochs=config.max_epochs,
                       batch_size=config.batch_size, patch_size=config.patch_size,
                       steps_per_epoch=config.steps_per_epoch, learning_rate=config.learning_rate, seed=config.seed,
                       num_workers=config.num_workers, amp=config.amp, compile=config.compile,
                       checkpoint_every=config.checkpoint_every, scratch_dir=config.scratch_dir, save_best=False)
    for lmbda in lambdas:
        try:
            replace(base, lmbda=lmbda).validated()
        except InputError as exc:
            raise InputError(f"λ {lmbda}: {exc}") from None
    space.check(base, config.max_epochs)
    searcher = config.searcher
    if searcher == "auto":
        searcher = "grid" if space.enumerable else "optuna"
    if searcher == "grid" and not space.enumerable:
        raise InputError(f"--searcher grid needs a space of choices only; {space.name!r} has ranges "
                         f"({', '.join(k for k, p in space.searched.items() if p.kind != 'choice')})")
    configurations = tuple(space.grid(base, config.max_epochs)) if searcher == "grid" else None
    scheduler = config.scheduler
    if scheduler == "auto":
        scheduler = "fifo" if searcher == "grid" else "asha"
    longest = space.longest_truncation(base, config.max_epochs)
    grace = min(config.max_epochs, max(config.grace_epochs, longest + 1 if longest else 0))
    datasets = _datasets(config, verify_data)
    return Plan(config=config, space=space, base=base, lambdas=tuple(lambdas),
                off=space.off_configuration(base, config.max_epochs), configurations=configurations,
                searcher=searcher, scheduler=scheduler, grace=grace, datasets=datasets)


def _model(config: SearchConfig, space: SearchSpace) -> str:
    space_sets = space.model is not None or "model" in space.searched
    if config.model and space_sets:
        raise InputError(f"--model {config.model} conflicts with space {space.name!r}, which sets the model")
    return config.model or space.model or (space.off_values().get("model") if "model" in space.searched else None) \
        or config.preset_model


def _datasets(config: SearchConfig, verify: bool) -> dict[str, str | None]:
    train = resolve_dataset(config.train_dataset, "train")
    val = resolve_dataset(config.test_dataset, "val")
    test = resolve_dataset(None, "test") if config.train_dataset is None and "test" in SPLITS else None
    if verify:
        for folder in (train, val):
            verify_dataset(folder)
    return {"train": str(train), "val": str(val), "test": str(test) if test else None}
