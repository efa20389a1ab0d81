"""``SearchConfig``: everything one experiment needs, typed and validated (no argparse below the CLI)."""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from trainable.errors import InputError
from trainable.warm_start import check_spec

from .presets import PRESET_ONLY, PRESETS, default_preset

SCHEDULERS = ("auto", "fifo", "asha")    # auto: FIFO for enumerated spaces, ASHA for Optuna ones
SEARCHERS = ("auto", "grid", "optuna", "random")   # auto: grid if the space is only choices, else optuna


@dataclass(frozen=True)
class SearchConfig:
    space: str                                    # a registered space or a .yaml/.json file
    preset: str = "cpu-smoke"
    name: str | None = None                       # default: the space's name
    storage_path: str = "ray_results"             # a path, or a URI (s3://, gs://) for clusters
    resume: bool = False
    # search
    searcher: str = "auto"
    scheduler: str = "auto"
    num_samples: int = 4                          # configurations to train (Optuna / random)
    seeds: int = 1                                # every configuration, off included, with this many seeds
    seed: int = 0                                 # first training seed; also seeds the searcher
    max_epochs: int = 6                           # evaluation periods (--steps-per-epoch steps each)
    max_steps: int | None = None                  # optimizer steps per λ model; sets max_epochs (rounded up)
    grace_epochs: int = 2                         # ASHA grace (raised to cover Phase 1)
    reduction_factor: float = 2.0
    lambdas: tuple[float, ...] | None = None      # --lambdas; None: the space's own, else the preset's (plan)
    # training
    model: str | None = None                      # None: the space's model, else the preset's
    batch_size: int = 8
    patch_size: int = 128
    steps_per_epoch: int | None = 16              # steps between validations; None: one pass over the data
    learning_rate: float = 3e-3
    train_dataset: str | None = None              # None: the built-in sample train split
    val_dataset: str | None = None                # validation folder (selection); None: the built-in val split
    init_weights: str | None = None               # warm start: a file, a folder or a mapping λ → file
    amp: str = "fp32"                             # bf16: autocast (noise, rates, regularizers stay fp32)
    compile: bool = False                         # torch.compile each λ model
    deterministic: bool = False                   # bit-identical GPU runs (TrainConfig.deterministic)
    num_workers: int | None = None                # loader workers; None: the trial's CPUs minus one
    checkpoint_every: int = 1                     # a trial's checkpoint every N epochs (and after the last)
    scratch_dir: str | None = None                # node-local folder for a trial's working files
    # resources
    cpus_per_trial: float = 1
    gpus_per_trial: float = 0
    trial_resources: dict[str, float] = field(default_factory=dict)   # custom Ray resources per trial
    max_concurrent: int | None = None             # None: as many trials as the cluster's GPUs/CPUs fit
    max_failures: int = 1
    address: str | None = None                    # an existing Ray cluster
    dashboard_host: str = "127.0.0.1"
    # logging
    wandb: bool = False
    wandb_mode: str | None = None                 # None: $WANDB_MODE, else offline
    wandb_project: str = "hpcm-tune"

    @classmethod
    def create(cls, space: str, preset: str | None = None, **overrides: Any) -> "SearchConfig":
        """The preset's budget with ``overrides`` (None values ignored), validated."""
        preset = preset or default_preset()
        if preset not in PRESETS:
            raise InputError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise InputError(f"unknown search settings: {', '.join(unknown)}")
        misspelt = sorted(set(PRESETS[preset]) - known - PRESET_ONLY)
        if misspelt:      # a preset key nothing reads would silently leave its budget at the default
            raise InputError(f"preset {preset!r} sets unknown settings: {', '.join(misspelt)}")
        # the preset's model and λs rank below the space's (preset_model, preset_lambdas)
        values = {k: v for k, v in PRESETS[preset].items() if k in known and k not in ("model", "lambdas")}
        values.update({k: v for k, v in overrides.items() if v is not None})
        if values.get("lambdas") is not None:
            values["lambdas"] = tuple(float(v) for v in values["lambdas"])
        if str(values.get("init_weights")).lower() in ("", "none"):    # --init-weights none: no warm start
            values["init_weights"] = None
        if overrides.get("max_epochs") is not None:
            if overrides.get("max_steps") is not None:
                raise InputError("--max-steps and --max-epochs both set the budget; give one")
            values["max_steps"] = None                    # --max-epochs replaces the preset's step budget
        _steps_to_epochs(values)
        return cls(space=space, preset=preset, **values).validated()

    @property
    def preset_model(self) -> str:
        return PRESETS[self.preset]["model"]

    @property
    def preset_lambdas(self) -> tuple[float, ...] | None:
        """The preset's λs: used only when neither --lambdas nor the space sets them (plan)."""
        lambdas = PRESETS[self.preset].get("lambdas")
        return tuple(float(v) for v in lambdas) if lambdas else None

    def validated(self) -> "SearchConfig":
        checks = [
            (self.searcher in SEARCHERS, f"--searcher must be one of {', '.join(SEARCHERS)}, got {self.searcher!r}"),
            (self.scheduler in SCHEDULERS, f"--scheduler must be one of {', '.join(SCHEDULERS)}, got {self.scheduler!r}"),
            (self.num_samples >= 1, f"--num-samples must be >= 1, got {self.num_samples}"),
            (self.seeds >= 1, f"--seeds must be >= 1, got {self.seeds}"),
            (self.max_epochs >= 1, f"--max-epochs must be >= 1, got {self.max_epochs}"),
            (self.grace_epochs >= 1, f"--grace-epochs must be >= 1, got {self.grace_epochs}"),
            (self.max_concurrent is None or self.max_concurrent >= 1,
             f"--max-concurrent must be >= 1, got {self.max_concurrent}"),
            (self.max_failures >= 0, f"--max-failures must be >= 0, got {self.max_failures}"),
            (self.reduction_factor > 1, f"--reduction-factor must be > 1, got {self.reduction_factor}"),
            (self.cpus_per_trial > 0 and self.gpus_per_trial >= 0,
             "--cpus-per-trial must be > 0 and --gpus-per-trial >= 0"),
            (self.gpus_per_trial <= 1 or float(self.gpus_per_trial).is_integer(),
             f"--gpus-per-trial above 1 must be a whole number, got {self.gpus_per_trial}"),
            (all(isinstance(v, (int, float)) and v >= 0 for v in self.trial_resources.values()),
             "--trial-resources must map names to numbers >= 0"),
            (self.lambdas is None or (len(self.lambdas) > 0 and all(math.isfinite(v) and v > 0 for v in self.lambdas)),
             f"--lambdas must be positive numbers, got {self.lambdas}"),
            (len(set(self.lambdas or ())) == len(self.lambdas or ()), f"--lambdas repeats a value: {self.lambdas}"),
            (self.wandb_mode in (None, "offline", "online"), f"--wandb-mode must be offline or online"),
        ]
        for ok, message in checks:
            if not ok:
                raise InputError(message)
        _check_name(self.name)
        if self.init_weights is not None:
            check_spec(self.init_weights)
        return self

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["lambdas"] = list(self.lambdas) if self.lambdas is not None else None
        return out


def _check_name(name: str | None) -> None:
    """--name is one folder under --storage-path: a separator would nest it, ``..`` leave it."""
    if name is None:
        return
    if not name.strip() or name in (".", "..") or any(c in name for c in "/\\") or name.startswith("~"):
        raise InputError(f"--name must be one folder name (no '/', '\\', '~' or '..'), got {name!r}; "
                         "put the parent folder in --storage-path")


def _steps_to_epochs(values: dict[str, Any]) -> None:
    """A step budget (``max_steps``, the preset's or the user's) becomes whole evaluation
    periods: max_epochs = ceil(max_steps / steps_per_epoch), and max_steps is what that trains."""
    steps = values.get("max_steps")
    if steps is None:
        return
    spe = values.get("steps_per_epoch")
    if not isinstance(steps, int) or steps < 1:
        raise InputError(f"--max-steps must be >= 1, got {steps}")
    if spe is None:
        raise InputError("--max-steps needs --steps-per-epoch (the steps between validations)")
    if spe < 1:
        raise InputError(f"--steps-per-epoch must be >= 1, got {spe}")
    values["max_epochs"] = math.ceil(steps / spe)
    values["max_steps"] = values["max_epochs"] * spe
