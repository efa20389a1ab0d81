"""The space registry: each space module registers its space where it is defined.

``registry()`` imports every module of this package once (no hand-kept list), so a new
space is one new file that calls :func:`register`.
"""
from __future__ import annotations

import importlib
import json
import pkgutil
from pathlib import Path

from trainable.errors import InputError

from .base import SearchSpace

_SPACES: dict[str, SearchSpace] = {}
_NOT_SPACES = {"base", "registry"}
_discovered = False


def register(space: SearchSpace) -> SearchSpace:
    """Add a named space (returns it, so ``SPACE = register(SearchSpace(...))`` reads well)."""
    if _SPACES.get(space.name, space) is not space:
        raise ValueError(f"two spaces are named {space.name!r}")
    _SPACES[space.name] = space
    return space


def registry() -> dict[str, SearchSpace]:
    global _discovered
    if not _discovered:
        package = __name__.rpartition(".")[0]
        for module in pkgutil.iter_modules([str(Path(__file__).parent)]):
            if module.name not in _NOT_SPACES and not module.name.startswith("_"):
                importlib.import_module(f"{package}.{module.name}")
        _discovered = True
    return dict(_SPACES)


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
            raise InputError(f"space file {path} is not valid {path.suffix[1:].upper()}: "
                             f"{str(exc).splitlines()[0]}") from None
        return SearchSpace.from_dict(data, path.stem)
    raise InputError(f"unknown space {name_or_path!r}; choose one of {', '.join(spaces)} or give a .yaml/.json file")
