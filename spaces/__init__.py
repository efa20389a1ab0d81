"""Named search spaces: ``get_space(name_or_file)``, ``list_spaces()``."""
from __future__ import annotations

import importlib
import json
from pathlib import Path

from trainable.errors import InputError

from .base import DERIVED, OFFICIAL_LAMBDAS, Param, SearchSpace, choice

_MODULES = ("phase2_delta", "phase1_tau", "lambda_sweep", "joint", "baseline",
            "ablation_tau", "ablation_delta", "phase2_design")


def registry() -> dict[str, SearchSpace]:
    spaces = (importlib.import_module(f"{__name__}.{m}").SPACE for m in _MODULES)
    return {s.name: s for s in spaces}


def list_spaces() -> list[str]:
    return [s.summary() for s in registry().values()]


def get_space(name_or_path: str) -> SearchSpace:
    """A registered space by name, or a YAML/JSON file with the same schema."""
    spaces = registry()
    if name_or_path in spaces:
        return spaces[name_or_path]
    path = Path(name_or_path)
    if path.suffix.lower() in (".yaml", ".yml", ".json"):
        if not path.is_file():
            raise InputError(f"space file not found: {path}")
        text = path.read_text()
        try:
            if path.suffix.lower() == ".json":
                data = json.loads(text)
            else:
                import yaml
                data = yaml.safe_load(text)
        except Exception as exc:
            raise InputError(f"space file {path} is not valid {path.suffix[1:].upper()}: {str(exc).splitlines()[0]}") from None
        return SearchSpace.from_dict(data, path.stem)
    raise InputError(f"unknown space {name_or_path!r}; choose one of {', '.join(spaces)} or give a .yaml/.json file")


__all__ = ["DERIVED", "OFFICIAL_LAMBDAS", "Param", "SearchSpace", "choice", "get_space", "list_spaces", "registry"]
