"""A search space: searched parameters, fixed parameters and its λ values, as data.

A space turns a point (values of its searched parameters) into a :class:`Configuration`:
the TrainConfig overrides one trial trains at every λ, with a canonical id. This is the
one place where space keys become TrainConfig fields (``model`` → ``model_name``,
``truncation_fraction`` → ``truncation_epochs``, a fraction of the trial's epochs) and
where a regularizer that is off loses its other parameters, so configurations that
train identically get the same id. Nothing here imports Ray, Optuna or torch.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass, field, replace
from typing import Any, Callable

from trainable.config import LAMBDA_SCALE, PHASE1_FIELDS, PHASE2_FIELDS, TrainConfig
from trainable.errors import InputError

OFFICIAL_LAMBDAS = (0.0018, 0.0035, 0.0067, 0.013, 0.025, 0.0483)     # MSE scale
MS_SSIM_LAMBDAS = (2.4, 4.58, 8.73, 16.64, 31.73, 60.5)              # CompressAI's MS-SSIM scale
KINDS = ("choice", "uniform", "loguniform", "int")
SIGNIFICANT_DIGITS = 3   # sampled floats are rounded to this, so near-equal samples are one configuration
# Space keys that are not TrainConfig fields.
ALIASES = {"model": "model_name", "truncation_fraction": "truncation_epochs"}
OFF_ID = "off"
# Inert settings: rule(config, max_epochs) → TrainConfig fields that change nothing in that run.
# They go back to the base's values (a regularizer's switch, listed first, to False), so
# configurations that train identically share one id and are trained once.
InertRule = Callable[[TrainConfig, int], tuple[str, ...]]
INERT_RULES: list[InertRule] = []


def inert_rule(rule: InertRule) -> InertRule:
    INERT_RULES.append(rule)
    return rule


@inert_rule
def _phase1_off(cfg: TrainConfig, max_epochs: int) -> tuple[str, ...]:
    return () if cfg.phase1_on else PHASE1_FIELDS


@inert_rule
def _phase2_off(cfg: TrainConfig, max_epochs: int) -> tuple[str, ...]:
    """Off, or starting at or after the run's last epoch (then it never runs: the run is off's)."""
    return () if cfg.phase2_on and cfg.phase2_start < max_epochs else PHASE2_FIELDS


@inert_rule
def _joint_sign(cfg: TrainConfig, max_epochs: int) -> tuple[str, ...]:
    """The joint aligner's d(A) = 2 − 2ρ(A) with ρ(−A) = −ρ(A): repel(A) = attract(−A) + const,
    so the sign only flips the aligner's random start (see regularizers.inter_scale)."""
    return ("phase2_sign",) if cfg.phase2_aligner == "joint" else ()


def field_name(key: str) -> str:
    """The TrainConfig field a space key sets."""
    return ALIASES.get(key, key)


# What a YAML value must be for each TrainConfig annotation (a quoted "false" is a true string).
_TYPES = {"bool": ("a boolean (true or false, unquoted)", lambda v: isinstance(v, bool)),
          "int": ("a whole number", lambda v: isinstance(v, int) and not isinstance(v, bool)),
          "float": ("a number (unquoted)", lambda v: isinstance(v, (int, float)) and not isinstance(v, bool)),
          "str": ("a string", lambda v: isinstance(v, str)),
          "None": ("null", lambda v: v is None)}


def check_type(space: str, key: str, value: Any) -> None:
    """Refuse a value of the wrong type for its TrainConfig field, naming the key, the value and the type."""
    annotation = "float" if key == "truncation_fraction" else str(TrainConfig.__dataclass_fields__[field_name(key)].type)
    kinds = [k.strip() for k in annotation.split("|")]
    if not any(_TYPES[k][1](value) for k in kinds if k in _TYPES):
        expected = " or ".join(_TYPES[k][0] for k in kinds if k in _TYPES)
        raise InputError(f"space {space!r}: {key}: {value!r} is a {type(value).__name__}, expected {expected}")


def truncation_epochs(fraction: float, max_epochs: int) -> int:
    """Phase 1 length for a fraction of the trial's epochs (0: off; otherwise 1 .. max_epochs - 1)."""
    return 0 if fraction <= 0 else max(1, min(max_epochs - 1, round(fraction * max_epochs)))


def _canonical(value: Any) -> Any:
    if isinstance(value, float) and value != 0:
        return float(f"{value:.{SIGNIFICANT_DIGITS}g}")
    return value


def _format(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


@dataclass(frozen=True)
class Param:
    """One searched parameter: ``choice`` (values) or a range (uniform, loguniform, int)."""

    kind: str
    values: tuple = ()
    low: float | None = None
    high: float | None = None

    def __post_init__(self):
        if self.kind not in KINDS:
            raise InputError(f"parameter kind must be one of {', '.join(KINDS)}, got {self.kind!r}")
        if self.kind == "choice" and not self.values:
            raise InputError("a choice parameter needs at least one value")
        if self.kind != "choice" and not (isinstance(self.low, (int, float)) and isinstance(self.high, (int, float))
                                          and self.low < self.high):
            raise InputError(f"a {self.kind} parameter needs numbers low < high, got {self.low}..{self.high}")
        if self.kind == "loguniform" and self.low <= 0:
            raise InputError("a loguniform parameter needs low > 0")

    @property
    def ends(self) -> tuple:
        """Every value a check must accept: the choices, or both ends of the range."""
        if self.kind == "choice":
            return self.values
        return (int(self.low), int(self.high)) if self.kind == "int" else (self.low, self.high)

    def canonical(self, value: Any) -> Any:
        """Sampled values as trained: ints for ``int``, floats to SIGNIFICANT_DIGITS for ranges."""
        if self.kind == "int":
            return int(round(value))
        return value if self.kind == "choice" else _canonical(float(value))

    def to_dict(self) -> dict:
        if self.kind == "choice":
            return {"kind": "choice", "values": list(self.values)}
        return {"kind": self.kind, "low": self.low, "high": self.high}


def choice(*values) -> Param:
    return Param("choice", tuple(values))


@dataclass(frozen=True)
class Configuration:
    """What one trial trains at every λ: TrainConfig overrides plus a canonical id."""

    id: str
    is_off: bool
    overrides: dict[str, Any]

    def params(self) -> dict[str, Any]:
        return {**self.overrides, "configuration": self.id, "is_off": self.is_off}


@dataclass(frozen=True)
class SearchSpace:
    name: str
    description: str
    searched: dict[str, Param]
    fixed: dict[str, Any] = field(default_factory=dict)
    lambdas: tuple[float, ...] | None = None   # None: the official λs of the space's metric
    off: dict[str, Any] = field(default_factory=dict)  # values of the "off" configuration (optional)
    own_lambdas: bool = field(init=False, default=False, compare=False)   # λs given, not the metric's default

    def __post_init__(self):
        known = set(TrainConfig.__dataclass_fields__) | set(ALIASES)
        for key in [*self.searched, *self.fixed, *self.off]:
            if key not in known or key == "model_name":
                hint = " (use 'model')" if key == "model_name" else ""
                raise InputError(f"space {self.name!r}: unknown parameter {key!r}{hint}")
            if key in ("lmbda", "epochs", "save_path"):
                raise InputError(f"space {self.name!r}: {key!r} is set by the search, not by a space")
        for key, value in [*self.fixed.items(), *self.off.items()]:
            check_type(self.name, key, value)
        for key, p in self.searched.items():
            for value in p.ends:
                check_type(self.name, key, value)
        both = set(self.searched) & set(self.fixed)
        if both:
            raise InputError(f"space {self.name!r}: {', '.join(sorted(both))} both searched and fixed")
        metrics = set(self.searched["metric"].ends) if "metric" in self.searched else {self.fixed.get("metric", "mse")}
        if len(metrics) > 1:
            raise InputError(f"space {self.name!r}: searches metric over {', '.join(sorted(map(str, metrics)))}, "
                             "whose λ scales differ; make one space per metric")
        lambdas = self.lambdas
        object.__setattr__(self, "own_lambdas", lambdas is not None)
        if lambdas is None:
            lambdas = MS_SSIM_LAMBDAS if metrics == {"ms-ssim"} else OFFICIAL_LAMBDAS
        if isinstance(lambdas, (int, float)) or not lambdas or any(
                not isinstance(v, (int, float)) or isinstance(v, bool) or not v > 0 for v in lambdas):
            raise InputError(f"space {self.name!r}: lambdas must be a list of positive numbers")
        scales = {m for v in lambdas for m, (low, high) in LAMBDA_SCALE.items() if low < v < high}
        if len(scales) > 1:
            raise InputError(f"space {self.name!r}: lambdas mix the {' and '.join(sorted(scales))} scales: "
                             f"{', '.join(map(str, lambdas))}; make one space per metric")
        object.__setattr__(self, "lambdas", tuple(float(v) for v in lambdas))
        for key, p in self.searched.items():
            if key in self.off and p.kind == "choice" and self.off[key] not in p.values:
                raise InputError(f"space {self.name!r}: its 'off' value {key}={self.off[key]!r} is not searchable")
            if key not in self.off and field_name(key) not in (*PHASE1_FIELDS, *PHASE2_FIELDS) and p.kind != "choice":
                raise InputError(f"space {self.name!r}: searched {key!r} needs a value for the off configuration "
                                 "(regularizers_off)")

    # ------------------------------------------------------------------ properties
    @property
    def metric(self) -> str:
        return self.searched["metric"].values[0] if "metric" in self.searched else self.fixed.get("metric", "mse")

    @property
    def enumerable(self) -> bool:
        """Only choices: the space is a finite grid."""
        return all(p.kind == "choice" for p in self.searched.values())

    @property
    def model(self) -> str | None:
        """The model the space fixes, or None (the search's model, or a searched one)."""
        return self.fixed.get("model")

    def summary(self) -> str:
        params = ", ".join(self.searched) or "none"
        return f"{self.name:<16} {self.description} [searched: {params}; λ: {len(self.lambdas)}]"

    def to_dict(self) -> dict:
        return {"name": self.name, "description": self.description,
                "searched": {k: p.to_dict() for k, p in self.searched.items()},
                "fixed": dict(self.fixed), "lambdas": list(self.lambdas), "regularizers_off": dict(self.off)}

    # ------------------------------------------------------------------ configurations
    def train_values(self, values: dict[str, Any], max_epochs: int) -> dict[str, Any]:
        """Fixed plus ``values`` as TrainConfig fields; the truncation fraction becomes epochs here only."""
        out = {}
        for key, value in {**self.fixed, **values}.items():
            out[field_name(key)] = truncation_epochs(value, max_epochs) if key == "truncation_fraction" else value
        return out

    def configuration(self, values: dict[str, Any], base: TrainConfig, max_epochs: int,
                      force_off: bool = False) -> Configuration:
        """The configuration a point of the space trains (``values``: searched key → value)."""
        values = {k: self.searched[k].canonical(v) if k in self.searched else v for k, v in values.items()}
        train = self.train_values(values, max_epochs)
        if force_off:
            train.update(spectral_reg=False, phase2_reg=False)
        cfg = _validated(self.name, replace(base, **train))
        for rule in INERT_RULES:
            inert = rule(cfg, max_epochs)
            train = {k: v for k, v in train.items() if k not in inert}
            if inert and inert[0] in (PHASE1_FIELDS[0], PHASE2_FIELDS[0]):
                train[inert[0]] = False       # a regularizer that never acts: its switch says "off"
        searched = {field_name(k) for k in self.searched}
        context = {field_name(k): v for k, v in self.train_values(self.off_values(), max_epochs).items()
                   if field_name(k) in searched and field_name(k) not in (*PHASE1_FIELDS, *PHASE2_FIELDS)}
        is_off = not train["spectral_reg"] and not train["phase2_reg"] and all(
            train.get(k) == v for k, v in context.items())
        shown = sorted(k for k in searched if k in train and not (k in (PHASE1_FIELDS[0], PHASE2_FIELDS[0])
                                                                   and train[k] is False))
        ident = OFF_ID if is_off else (",".join(f"{k}={_format(train[k])}" for k in shown) or "default")
        return Configuration(ident, is_off, train)

    def off_values(self) -> dict[str, Any]:
        """Searched values of the off configuration: ``off``, else each choice's first value."""
        out = {}
        for key, p in self.searched.items():
            if key in self.off:
                out[key] = self.off[key]
            elif p.kind == "choice":
                out[key] = p.values[0]
            else:
                out[key] = p.low
        return out

    def off_configuration(self, base: TrainConfig, max_epochs: int) -> Configuration:
        return self.configuration(self.off_values(), base, max_epochs, force_off=True)

    def grid(self, base: TrainConfig, max_epochs: int) -> list[Configuration]:
        """Every distinct configuration of an enumerable space, the off one first."""
        if not self.enumerable:
            raise InputError(f"space {self.name!r} has continuous parameters; it cannot be enumerated")
        out = {OFF_ID: self.off_configuration(base, max_epochs)}
        keys = list(self.searched)
        for combo in itertools.product(*(self.searched[k].values for k in keys)):
            conf = self.configuration(dict(zip(keys, combo)), base, max_epochs)
            out.setdefault(conf.id, conf)
        return list(out.values())

    def check(self, base: TrainConfig, max_epochs: int) -> None:
        """Every choice value and both ends of every range against TrainConfig's rules (the other
        searched keys at their off values, so each checked point is one the space can train)."""
        off = self.off_values()
        if not self.searched:
            _validated(self.name, replace(base, **self.train_values({}, max_epochs)))
        for key, p in self.searched.items():
            for value in p.ends:
                train = self.train_values({**off, key: value}, max_epochs)
                _validated(self.name, replace(base, **train), f"{key}={value!r}")
        self.off_configuration(base, max_epochs)

    def longest_truncation(self, base: TrainConfig, max_epochs: int) -> int:
        """The longest Phase 1 (epochs) of any configuration; 0 when Phase 1 is never on."""
        spectral = self.searched.get("spectral_reg")
        if not (self.fixed.get("spectral_reg", base.spectral_reg) or (spectral and True in spectral.ends)):
            return 0
        for key in ("truncation_fraction", "truncation_epochs"):
            if key in self.searched:
                return max(self.train_values({key: v}, max_epochs)["truncation_epochs"]
                           for v in self.searched[key].ends)
        return self.train_values({}, max_epochs).get("truncation_epochs", base.truncation_epochs)

    # ------------------------------------------------------------------ files
    @classmethod
    def from_dict(cls, data: dict, name: str) -> "SearchSpace":
        if not isinstance(data, dict):
            raise InputError(f"space file {name}: expected a mapping at the top level")
        unknown = {str(k) for k in data} - {"name", "description", "searched", "fixed", "lambdas", "regularizers_off"}
        if unknown:
            raise InputError(f"space file {name}: unknown keys {', '.join(sorted(unknown))}")
        searched = {}
        for key, spec in (data.get("searched") or {}).items():
            if isinstance(spec, list):
                spec = {"kind": "choice", "values": spec}
            if not isinstance(spec, dict):
                raise InputError(f"space file {name}: parameter {key!r} must be a list or a mapping")
            spec = dict(spec)
            spec["values"] = tuple(spec.get("values", ()))
            try:
                searched[key] = Param(**spec)
            except TypeError as exc:
                raise InputError(f"space file {name}: parameter {key!r}: {exc}") from None
            except InputError as exc:
                raise InputError(f"space file {name}: parameter {key!r}: {exc}") from None
        lambdas = data.get("lambdas")
        return cls(name=str(data.get("name", name)), description=str(data.get("description", "user space")),
                   searched=searched, fixed=dict(data.get("fixed") or {}),
                   lambdas=tuple(lambdas) if isinstance(lambdas, list) else lambdas,
                   off=dict(data.get("regularizers_off") or {}))


def _validated(space: str, cfg: TrainConfig, what: str = "") -> TrainConfig:
    try:
        return cfg.validated()
    except InputError as exc:
        raise InputError(f"space {space!r}: {what + ': ' if what else ''}{exc}") from None
    except TypeError as exc:   # e.g. a string where a number belongs
        raise InputError(f"space {space!r}: {what + ': ' if what else ''}{exc}") from None
