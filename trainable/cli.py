"""Shared CLI behaviour: user errors become one line on stderr and exit status 2."""
from __future__ import annotations

import sys
from typing import Callable

import argparse

from .errors import InputError, TrainingError

USAGE_ERROR = 2


class OneLineParser(argparse.ArgumentParser):
    """argparse whose usage errors are one line (``error: ...``) and exit status 2."""

    def error(self, message: str):
        self.exit(USAGE_ERROR, f"error: {message} (see --help)\n")


def registry_name(load: Callable[[], object]) -> Callable[[str], str]:
    """An argparse ``type`` that accepts the names ``load()`` returns (a registry filled by torch
    modules), read only when a value is checked: argparse would list ``choices`` in every
    ``--help``, importing torch (seconds) to print it."""
    def name(value: str) -> str:
        names = tuple(load())
        if value not in names:
            raise argparse.ArgumentTypeError(f"invalid choice: {value!r} (choose from {', '.join(names)})")
        return value
    return name


def run_cli(main: Callable[[list[str] | None], int | None], argv: list[str] | None = None) -> int:
    """Run ``main``; an :class:`InputError` (or a path that cannot be read or written) prints
    ``error: ...`` on one line and returns 2."""
    try:
        return main(argv) or 0
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return USAGE_ERROR
    except OSError as exc:        # a path the checks before the work could not foresee (full disk, races)
        where = f": {exc.filename}" if exc.filename else ""
        print(f"error: {exc.strerror or exc}{where}", file=sys.stderr)
        return USAGE_ERROR
    except TrainingError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
