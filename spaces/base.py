"""A search space: searched parameters (distributions), fixed parameters, and its λ values.

Spaces are data, not code paths: each named space is a small module holding one
``SearchSpace``; YAML/JSON files with the same schema work too (``spaces.load``).
Distributions are converted to Ray Tune's (which OptunaSearch understands) only in
``to_tune``; nothing here imports Ray.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from trainable.config import TrainConfig
from trainable.errors import InputError

OFFICIAL_LAMBDAS = (0.0018, 0.0035, 0.0067, 0.013, 0.025, 0.0483)
KINDS = ("choice", "uniform", "loguniform", "int")
# Not TrainConfig fields, resolved by the search: a fraction of the run's epochs.
DERIVED = {"truncation_fraction": "truncation_epochs"}


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
        if self.kind != "choice" and (self.low is None or self.high is None or not self.low < self.high):
            raise InputError(f"a {self.kind} parameter needs low < high, got {self.low}..{self.high}")
        if self.kind == "loguniform" and self.low <= 0:
            raise InputError("a loguniform parameter needs low > 0")

    def candidates(self) -> tuple:
        """Values for grid search (choices only)."""
        if self.kind != "choice":
            raise InputError(f"grid search needs choice parameters, this one is {self.kind}")
        return self.values


def choice(*values) -> Param:
    return Param("choice", tuple(values))


@dataclass(frozen=True)
class SearchSpace:
    name: str
    description: str
    searched: dict[str, Param]
    fixed: dict[str, Any] = field(default_factory=dict)
    lambdas: tuple[float, ...] = OFFICIAL_LAMBDAS
    off: dict[str, Any] = field(default_factory=dict)  # the "regularizers off" point of this space

    def __post_init__(self):
        known = set(TrainConfig.__dataclass_fields__) | set(DERIVED)
        for key in [*self.searched, *self.fixed, *self.off]:
            if key not in known:
                raise InputError(f"space {self.name!r}: unknown parameter {key!r}")
        if "lmbda" in self.searched or "lmbda" in self.fixed:
            raise InputError(f"space {self.name!r}: put λ values in 'lambdas', not in the parameters")
        if not self.lambdas or any(not (isinstance(v, (int, float)) and v > 0) for v in self.lambdas):
            raise InputError(f"space {self.name!r}: lambdas must be positive numbers")
        for key, value in self.off.items():
            p = self.searched.get(key)
            if p is not None and p.kind == "choice" and value not in p.values:
                raise InputError(f"space {self.name!r}: its 'off' value {key}={value!r} is not searchable")

    def summary(self) -> str:
        params = ", ".join(self.searched) or "none"
        return f"{self.name:<16} {self.description} [searched: {params}; λ: {len(self.lambdas)}]"

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
        return cls(name=data.get("name", name), description=data.get("description", "user space"),
                   searched=searched, fixed=dict(data.get("fixed") or {}),
                   lambdas=tuple(data.get("lambdas") or OFFICIAL_LAMBDAS),
                   off=dict(data.get("regularizers_off") or {}))
