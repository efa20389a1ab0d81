"""Which config keys define a "configuration", and how to name one.

A group is every trial sharing all hyperparameters except the rate-distortion lambda, so
one group is one RD curve. Not hyperparameters (never split groups):

* ``lmbda``, the curve's own axis;
* run length and bookkeeping: ``epochs``, ``num_workers``, ``device``, ``trial_id``,
  ``name``, ``experiment_name``, and any key ending in ``_dir``, ``_path``, ``_root`` or
  ``_file``, or starting with ``wandb``.

``seed`` stays a hyperparameter, so seeds are separate curves rather than silently pooled.
Settings of a regularizer that is off did not affect training, so :func:`effective` blanks
them (switch False, parameters None) before grouping: baseline trials that happen to carry
different ``delta`` or ``tau_init`` values are one curve.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

LAMBDA_KEY = "lmbda"
BOOKKEEPING_KEYS = frozenset({"epochs", "num_workers", "device", "trial_id", "name", "experiment_name"})
BOOKKEEPING_SUFFIXES = ("_dir", "_path", "_root", "_file")
BOOKKEEPING_PREFIXES = ("wandb",)

# (switch, parameters) of each regularizer; a baseline matches a group on all other keys.
PHASE1 = ("spectral_reg", ("tau_init", "tau_final", "truncation_epochs"))
PHASE2 = ("phase2_reg", ("delta", "distance", "alignment", "phase2_sign", "scale_latents", "phase2_start_epoch"))
REGULARIZER_KEYS = frozenset({PHASE1[0], *PHASE1[1], PHASE2[0], *PHASE2[1]})


def is_hyperparameter(key: str) -> bool:
    """True for config keys that distinguish one RD curve from another."""
    return not (
        key == LAMBDA_KEY
        or key in BOOKKEEPING_KEYS
        or key.endswith(BOOKKEEPING_SUFFIXES)
        or key.startswith(BOOKKEEPING_PREFIXES)
    )


def regularizers_off(config: Mapping[str, Any]) -> bool:
    """Baseline test: Phase 1 off (or zero truncation epochs) and Phase 2 off (or delta 0)."""
    return _phase1_off(config) and _phase2_off(config)


def effective(config: Mapping[str, Any]) -> dict[str, Any]:
    """The config as training saw it: an inactive regularizer's keys blanked."""
    result = dict(config)
    for (switch, parameters), off in ((PHASE1, _phase1_off(config)), (PHASE2, _phase2_off(config))):
        if off:
            result.update({key: None for key in parameters if key in result})
            if switch in result:
                result[switch] = False
    return result


def inert(config: Mapping[str, Any], key: str) -> bool:
    """True when ``key`` parameterizes a regularizer that this config leaves off."""
    return (key in PHASE1[1] and _phase1_off(config)) or (key in PHASE2[1] and _phase2_off(config))


def _phase1_off(config: Mapping[str, Any]) -> bool:
    return not canonical(config.get("spectral_reg")) or _is_zero(config.get("truncation_epochs"))


def _phase2_off(config: Mapping[str, Any]) -> bool:
    return not canonical(config.get("phase2_reg")) or _is_zero(config.get("delta"))


def _is_zero(value: Any) -> bool:
    value = canonical(value)
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value == 0


def canonical(value: Any) -> Any:
    """A hashable stand-in where None and NaN compare equal (both mean "unset")."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if hasattr(value, "item"):  # numpy scalar
        return value.item()
    return value


def format_value(value: Any) -> str:
    value = canonical(value)
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def varying_keys(configs: Iterable[Mapping[str, Any]], keys: Iterable[str]) -> list[str]:
    """The keys taking more than one value, in the given order; inert settings don't count."""
    configs = list(configs)
    return [key for key in keys
            if len({canonical(c.get(key)) for c in configs if not inert(c, key)}) > 1]


def label(config: Mapping[str, Any], keys: Iterable[str]) -> str:
    """Short human name from the varying keys, e.g. "phase2_reg=True, delta=0.1"."""
    keys = list(keys)
    if not keys:
        return "all trials"
    parts = [f"{key}={format_value(config.get(key))}" for key in keys if not inert(config, key)]
    return ", ".join(parts) if parts else "defaults"
