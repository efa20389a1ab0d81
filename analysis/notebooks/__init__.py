"""Notebooks for interactive analysis, and a headless runner for them."""

from .runner import execute

__all__ = ["execute"]
