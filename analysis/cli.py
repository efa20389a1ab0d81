"""What the analysis CLIs share: bad input becomes one line on stderr and exit status 2."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from .errors import AnalysisError


class ArgumentParser(argparse.ArgumentParser):
    """argparse whose usage errors raise :class:`AnalysisError` instead of printing usage."""

    def error(self, message: str) -> None:
        raise AnalysisError(message)


def run(prog: str, body: Callable[[], object], errors: tuple[type[BaseException], ...] = ()) -> int:
    """Print what ``body()`` returns and return 0; on bad input print one line and return 2."""
    try:
        result = body()
    except (AnalysisError, OSError, *errors) as exc:
        print(f"{prog}: error: {exc}".splitlines()[0], file=sys.stderr)
        return 2
    print(result)
    return 0
