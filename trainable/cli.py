"""Shared CLI behaviour: user errors become one line on stderr and exit status 2."""
from __future__ import annotations

import sys
from typing import Callable

from .errors import InputError

USAGE_ERROR = 2


def run_cli(main: Callable[[list[str] | None], int | None], argv: list[str] | None = None) -> int:
    """Run ``main``; an :class:`InputError` (or missing file) prints ``error: ...`` and returns 2."""
    try:
        return main(argv) or 0
    except (InputError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return USAGE_ERROR
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
