"""Name → implementation tables for the regularizers' replaceable parts (Phase-1 masks,
Phase 2 distances and aligners): a new one is one decorated function or class."""
from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def registrar(table: dict[str, T]) -> Callable[[str], Callable[[T], T]]:
    """``@registrar(TABLE)("name")`` files the decorated object in ``TABLE`` under ``name``."""
    def register(name: str) -> Callable[[T], T]:
        def add(obj: T) -> T:
            table[name] = obj
            return obj
        return add
    return register
