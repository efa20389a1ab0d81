"""The model registry: ``@register_model(name)``, ``create_model(name)``, ``model_names()``.

As in CompressAI's ``compressai.registry``, a model is registered by a decorator next
to its factory (a class or a function returning the model)::

    @register_model("DHIC_Tiny")
    def dhic_tiny(**overrides) -> DHIC:
        ...

Adding a model is one new module in ``trainable/models/`` (plus its test); nothing
central is edited. The names must be known without importing torch (``TrainConfig``
validation and the search spaces need them, and torch + compressai take seconds to
import), so this module never imports the model modules just to list them:
:func:`declared_models` *parses* (``ast``, not ``import``) every sibling module and
collects the string literals of its ``register_model("...")`` calls. The module that
declares a name is imported only when that model is built (:func:`create_model`),
which runs its decorators and fills the live registry. Names registered at run time
from elsewhere (a test, a plug-in) are listed too, once their decorator has run.

The one rule this imposes: in ``trainable/models/`` a model's name is a string
literal in its ``register_model`` call.
"""
from __future__ import annotations

import ast
import functools
import importlib
import pkgutil
from pathlib import Path
from typing import Any, Callable, TypeVar

from ..errors import InputError

Factory = TypeVar("Factory", bound=Callable[..., Any])

_FACTORIES: dict[str, Callable[..., Any]] = {}
_PACKAGE = __name__.rsplit(".", 1)[0]
_DIRECTORY = Path(__file__).resolve().parent


def register_model(name: str) -> Callable[[Factory], Factory]:
    """Decorator: register ``factory(**overrides) -> model`` under ``name``."""
    if not isinstance(name, str) or not name:
        raise TypeError(f"register_model needs a non-empty string name, got {name!r}")

    def decorator(factory: Factory) -> Factory:
        known = _FACTORIES.get(name)
        if known is not None and _qualname(known) != _qualname(factory):
            raise ValueError(f"model {name!r} is already registered by {_qualname(known)}")
        _FACTORIES[name] = factory
        return factory

    return decorator


def _qualname(factory: Callable[..., Any]) -> str:
    return f"{factory.__module__}.{factory.__qualname__}"


def declared_models(directory: str | Path = _DIRECTORY) -> dict[str, str]:
    """``{model name: module name}`` for the literal ``register_model("...")`` calls in the
    modules of ``directory``, read with ``ast`` (nothing is imported)."""
    directory = Path(directory)
    found: dict[str, str] = {}
    for info in pkgutil.iter_modules([str(directory)]):
        path = directory / f"{info.name}.py"
        if info.ispkg or not path.is_file():
            continue
        source = path.read_text(encoding="utf-8")
        if "register_model(" not in source:
            continue
        for node in ast.walk(ast.parse(source, filename=str(path))):
            if (isinstance(node, ast.Call) and _callee(node.func) == "register_model" and node.args
                    and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
                if node.args[0].value in found:
                    raise ValueError(f"model {node.args[0].value!r} is declared in both "
                                     f"{found[node.args[0].value]} and {info.name}")
                found[node.args[0].value] = info.name
    return found


def _callee(func: ast.expr) -> str | None:
    if isinstance(func, ast.Name):
        return func.id
    return func.attr if isinstance(func, ast.Attribute) else None


@functools.cache
def _declared() -> dict[str, str]:
    return declared_models()


def model_names() -> tuple[str, ...]:
    """Every model ``create_model`` can build, sorted; does not import torch."""
    return tuple(sorted(set(_declared()) | set(_FACTORIES)))


def create_model(name: str, channels_last: bool = True, **overrides: Any):
    """Build the registered model ``name``; ``overrides`` go to its factory.

    The model is checked against :class:`~trainable.models.interface.CompressionModel`.
    Weights are kept channels-last by default: same outputs (within float rounding),
    ~1.25x faster convolutions on CPU (oneDNN) and tensor-core friendly on GPU.
    """
    if name not in _FACTORIES:
        module = _declared().get(name)
        if module is None:
            raise InputError(f"unknown model {name!r}; choose one of {', '.join(model_names())}")
        importlib.import_module(f"{_PACKAGE}.{module}")
        if name not in _FACTORIES:
            raise RuntimeError(f"{_PACKAGE}.{module} declares model {name!r} but did not register it")
    from .interface import check_model

    model = _FACTORIES[name](**overrides)
    model.name = name
    check_model(model)
    if channels_last:
        import torch

        model = model.to(memory_format=torch.channels_last)
    return model
