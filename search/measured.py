"""The measured figures the dry run plans with, read from ``benchmarks/results.json`` (written by
``benchmarks.loader`` and ``benchmarks.memory --activations``), so the plan, the docs and the
measurement are one number."""
from __future__ import annotations

import json
from pathlib import Path

from trainable.errors import InputError

RESULTS = Path(__file__).resolve().parents[1] / "benchmarks" / "results.json"


def measured(section: str, *keys: str, path: Path = RESULTS):
    """``results[section][keys...]``; one line naming the benchmark when it is missing."""
    try:
        value = json.loads(path.read_text())[section]
        for key in keys:
            value = value[key]
    except (OSError, ValueError, KeyError, TypeError):
        raise InputError(f"{path} has no {section}/{'/'.join(keys)}: run the benchmark that writes it "
                         "(docs/gpus.md)") from None
    return value
