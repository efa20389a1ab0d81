"""Stop signals during a search: an interruption, never a success.

Tune ends its loop gracefully on SIGINT (and SIGUSR1): it snapshots the experiment state,
stops the running trials (whose last per-epoch checkpoints stay) and returns as if done.
:class:`StopSignals` routes SIGINT and SIGTERM (a cluster scheduler's ``scancel``/``kill``)
to that same graceful stop and remembers which signal came, so ``run_experiment`` records
the experiment as interrupted and the CLI exits 128 + signal (130, 143) with the
``--resume`` command. A second signal aborts at once (KeyboardInterrupt).
"""
from __future__ import annotations

import logging
import os
import shlex
import signal
from types import FrameType

SIGNALS = (signal.SIGINT, signal.SIGTERM)
TUNE_LOGGER = "ray.tune.tune"      # logs Ray's own resume hint (Tuner.restore), wrong for this CLI


def exit_status(signum: int) -> int:
    """The shell's status for a process ended by ``signum`` (130 for SIGINT, 143 for SIGTERM)."""
    return 128 + signum


def resume_command(argv: list[str]) -> str:
    """The command that finishes the interrupted experiment: the same flags plus ``--resume``."""
    args = [a for a in argv if a != "--resume"]
    return shlex.join(["python", "-m", "search.run", *args, "--resume"])


class _NoRayResumeHint(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "Tuner.restore" not in record.getMessage()


class StopSignals:
    """Context manager around ``Tuner.fit``: ``received`` is the first stop signal, or None."""

    def __init__(self) -> None:
        self.received: int | None = None
        self._previous: dict[int, object] = {}
        self._sigint_env: str | None = None
        self._filter = _NoRayResumeHint()

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.received is not None:
            raise KeyboardInterrupt          # asked twice: stop without waiting for Tune
        self.received = signum
        tune_stop = signal.getsignal(signal.SIGUSR1)     # Tune's graceful stop, installed by fit()
        if callable(tune_stop) and tune_stop is not self._handle:
            tune_stop(signum, frame)
        else:                                # Tune's loop is not running (yet): nothing to end gracefully
            raise KeyboardInterrupt

    def __enter__(self) -> "StopSignals":
        # Tune's own SIGINT handler would hide the signal from us: it is reached through SIGUSR1
        self._sigint_env = os.environ.get("TUNE_DISABLE_SIGINT_HANDLER")
        os.environ["TUNE_DISABLE_SIGINT_HANDLER"] = "1"
        for signum in SIGNALS:
            self._previous[signum] = signal.signal(signum, self._handle)
        logging.getLogger(TUNE_LOGGER).addFilter(self._filter)
        return self

    def __exit__(self, *exc) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        if self._sigint_env is None:
            os.environ.pop("TUNE_DISABLE_SIGINT_HANDLER", None)
        else:
            os.environ["TUNE_DISABLE_SIGINT_HANDLER"] = self._sigint_env
        logging.getLogger(TUNE_LOGGER).removeFilter(self._filter)
