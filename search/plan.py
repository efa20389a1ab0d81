"""An experiment's plan, built and checked before Ray starts: space, base TrainConfig, λs,
configurations (enumerated spaces) or a sampled space (Optuna), searcher, scheduler, grace.

Everything a user can get wrong fails here, as one :class:`InputError` line.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from spaces import Configuration, SearchSpace, get_space
from trainable.config import LAMBDA_SCALE, TrainConfig, check_phase1_length
from trainable.data import SPLITS, check_training_set, dataset_manifest, resolve_dataset
from trainable.errors import InputError

from .config import SearchConfig
from .presets import PRESETS
from .storage import check_local_root

MIN_LAMBDAS = 4          # a BD-rate needs 4 RD points per curve (analysis.bd.MIN_POINTS)


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
    datasets: dict[str, str | None]         # train / val (selection) / test (held out; None: user-given at evaluation)
    lambdas_from: str = "--lambdas"         # where the λs came from (--lambdas, the space, the preset)

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
                "off": self.off.id, "datasets": self.datasets, "lambdas_from": self.lambdas_from,
                "configurations": [c.id for c in self.configurations] if self.configurations else None}


def make_plan(config: SearchConfig, verify_data: bool = True) -> Plan:
    """Resolve and check everything; verifies the datasets (cached manifest) unless told not to."""
    space = get_space(config.space)
    if not is_uri(config.storage_path):
        storage = Path(config.storage_path).expanduser().absolute()
        check_local_root(str(storage), str(storage / (config.name or space.name)))
    model = _model(config, space)
    lambdas, lambdas_from = _lambdas(config, space)
    datasets = _datasets(config, space, verify_data)
    # user folders as absolute paths (a trial runs in its own directory); None: each node's built-in split
    base = TrainConfig(model_name=model, train_dataset=_user_folder(config.train_dataset, datasets["train"]),
                       test_dataset=_user_folder(config.val_dataset, datasets["val"]),
                       lmbda=lambdas[0], metric=space.metric, epochs=config.max_epochs,
                       batch_size=config.batch_size, patch_size=config.patch_size,
                       steps_per_epoch=config.steps_per_epoch, learning_rate=config.learning_rate, seed=config.seed,
                       num_workers=config.num_workers, amp=config.amp, compile=config.compile,
                       deterministic=config.deterministic,
                       checkpoint_every=config.checkpoint_every, scratch_dir=config.scratch_dir, save_best=False)
    for lmbda in lambdas:
        try:
            replace(base, lmbda=lmbda).validated()
        except InputError as exc:      # say where a bad λ came from; other settings' errors stand alone
            raise InputError(f"λ {lmbda} (from {lambdas_from}): {exc}" if "lambda" in str(exc) else str(exc)) from None
    longest = space.longest_truncation(base, config.max_epochs)
    try:
        check_phase1_length(longest, config.max_epochs, "truncation_fraction (a share of the run, e.g. 0.0333) "
                                                         "or truncation_epochs")
    except InputError as exc:
        raise InputError(f"space {space.name!r}: {exc}") from None
    space.check(base, config.max_epochs)
    _check_ms_ssim_sizes(space, config.patch_size, "--patch-size")
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
    grace = min(config.max_epochs, max(config.grace_epochs, longest + 1 if longest else 0))
    return Plan(config=config, space=space, base=base, lambdas=tuple(lambdas),
                off=space.off_configuration(base, config.max_epochs), configurations=configurations,
                searcher=searcher, scheduler=scheduler, grace=grace, datasets=datasets, lambdas_from=lambdas_from)


def _lambdas(config: SearchConfig, space: SearchSpace) -> tuple[tuple[float, ...], str]:
    """--lambdas, else the space's own, else the preset's when on the space's metric scale,
    else the space metric's default λs."""
    low, high = LAMBDA_SCALE.get(space.metric, (0.0, float("inf")))
    preset = config.preset_lambdas
    if config.lambdas:
        lambdas, source = config.lambdas, "--lambdas"
    elif space.own_lambdas:
        lambdas, source = space.lambdas, f"space {space.name}"
    elif preset and all(low < v < high for v in preset):
        lambdas, source = preset, f"preset {config.preset}"
    else:
        lambdas, source = space.lambdas, f"{space.metric} default"
    return tuple(lambdas), source


def check_bd_rate(plan: Plan) -> None:
    """A search's verdict is a BD-rate vs off: refuse fewer than MIN_LAMBDAS points per curve
    before training, unless the preset measures something else (``"bd_rate": False``, e.g.
    steps-to-quality). ``search.run`` checks it for the dry run and the real run alike; not part of
    :func:`make_plan`, so a cost model can still price any plan."""
    if len(plan.lambdas) < MIN_LAMBDAS and PRESETS[plan.config.preset].get("bd_rate", True):
        raise InputError(f"{len(plan.lambdas)} λ value(s) from {plan.lambdas_from} "
                         f"({', '.join(f'{v:g}' for v in plan.lambdas)}): a BD-rate needs at least {MIN_LAMBDAS} "
                         "points per curve")


def _check_ms_ssim_sizes(space: SearchSpace, side: int, what: str) -> None:
    if space.metric != "ms-ssim":
        return
    from trainable.loss import MS_SSIM_MIN_SIDE      # torch: only for MS-SSIM spaces

    if side < MS_SSIM_MIN_SIDE:
        fix = (f": pass --patch-size {64 * -(-MS_SSIM_MIN_SIDE // 64)} or more" if what == "--patch-size"
               else ": use images at least that large")
        raise InputError(f"space {space.name!r} trains for MS-SSIM, which needs images of at least "
                         f"{MS_SSIM_MIN_SIDE} px per side; {what} is {side}{fix}")


def _model(config: SearchConfig, space: SearchSpace) -> str:
    space_sets = space.model is not None or "model" in space.searched
    if config.model and space_sets:
        raise InputError(f"--model {config.model} conflicts with space {space.name!r}, which sets the model")
    return config.model or space.model or (space.off_values().get("model") if "model" in space.searched else None) \
        or config.preset_model


def _datasets(config: SearchConfig, space: SearchSpace, verify: bool) -> dict[str, str | None]:
    """Resolved folders. ``test`` (held out, analysis.evaluate's default) is the built-in test
    split when training on the built-in train split, else None (a test set is given at
    evaluation). The validation set must not be the built-in test split (by path, and by
    file content when verifying)."""
    train = resolve_dataset(config.train_dataset, "train").resolve()
    builtin_train = _user_folder(config.train_dataset, "") is None
    val = resolve_dataset(config.val_dataset, "val").resolve()
    builtin_test = resolve_dataset(None, "test").resolve() if "test" in SPLITS else None
    test = builtin_test if builtin_train else None
    if builtin_test is not None and (val == builtin_test or (verify and _shares_an_image(val, builtin_test))):
        raise InputError(f"--val-dataset {val} is (or shares an image with) the built-in test split {builtin_test}, "
                         "which analysis.evaluate holds out; validate on another folder (default: the val split)")
    if verify:
        check_training_set(train, config.patch_size)
        val_sizes = dataset_manifest(val).sizes
        if val_sizes:
            _check_ms_ssim_sizes(space, min(min(size) for size in val_sizes), f"the smallest side in {val}")
    return {"train": str(train), "val": str(val), "test": str(test) if test else None}


def _user_folder(given: str | None, resolved: str) -> str | None:
    return None if given in (None, "", "sample") else resolved


def _shares_an_image(a: Path, b: Path) -> bool:
    """Some image of ``a`` has the same pixels as one of ``b`` (the manifests' digests, as analysis.evaluate's check)."""
    return not set(dataset_manifest(a).digests).isdisjoint(dataset_manifest(b).digests)
