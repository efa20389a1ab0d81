"""Per-λ warm starts: which weights each λ model starts from (``TrainConfig.init_weights``).

A fine-tuning study starts every λ model from *its own* released checkpoint (the official
HPCM releases are one state_dict per λ), so ``init_weights`` is one of:

- a file: every λ model starts from it;
- a folder: for each λ, the one file whose name holds that λ as a number (``0.0018.pth.tar``,
  ``HPCM_Base_mse_lambda=0.0018.pth``; ``0.013`` and ``0.0130`` are the same λ);
- a mapping λ → file: a JSON object, inline (``'{"0.0018": "a.pth", ...}'``) or a ``.json`` file.

:func:`resolve` turns any of them into the mapping for a curve's λs (one line naming the λ
without a file, or the λ with two); :func:`check_fit` loads each file strictly into the model
(state_dict names and shapes) before anything trains; :func:`weights_for` is what a run asks.
Torch is imported only by :func:`check_fit`.
"""
from __future__ import annotations

import json
import math
import re
from pathlib import Path

from .errors import InputError

_NUMBER = re.compile(r"\d+(?:\.\d+)?(?:[eE][-+]?\d+)?")
_SUFFIXES = (".pth.tar", ".pth", ".pt", ".tar", ".ckpt", ".bin")


def _same(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=0.0)


def _mapping(spec: str) -> dict[float, str] | None:
    """The λ → file mapping a spec spells (inline JSON or a .json file), else None."""
    text = spec.strip()
    if text.startswith("{"):
        where = "--init-weights"
    elif text.endswith(".json") and Path(text).expanduser().is_file():
        where, text = text, Path(text).expanduser().read_text()
    else:
        return None
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"{where}: not a JSON mapping λ → checkpoint ({exc.msg}, line {exc.lineno})") from None
    if not isinstance(raw, dict) or not raw:
        raise InputError(f"{where}: expected a JSON object mapping λ → checkpoint file")
    base = Path(where).expanduser().parent if where != "--init-weights" else Path.cwd()
    out: dict[float, str] = {}
    for key, value in raw.items():
        try:
            lmbda = float(key)
        except ValueError:
            raise InputError(f"{where}: key {key!r} is not a λ value") from None
        if not isinstance(value, str):
            raise InputError(f"{where}: λ {key} maps to {value!r}, not a file path")
        path = Path(value).expanduser()
        out[lmbda] = str(path if path.is_absolute() else (base / path).resolve())
    return out


def _checkpoints(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.name.lower().endswith(_SUFFIXES))


def _named(folder: Path, lmbda: float) -> list[Path]:
    """Files of ``folder`` whose name (suffix stripped) holds ``lmbda`` as a number."""
    found = []
    for path in _checkpoints(folder):
        stem = path.name
        for suffix in _SUFFIXES:
            if stem.lower().endswith(suffix):
                stem = stem[: -len(suffix)]
                break
        if any(_same(float(m), lmbda) for m in _NUMBER.findall(stem)):
            found.append(path)
    return found


def check_spec(spec: str) -> None:
    """Refuse a spec that is none of file, folder or mapping (cheap: no λs, no torch)."""
    if _mapping(spec) is None and not Path(spec).expanduser().exists():
        raise InputError(f"--init-weights: no such file or folder {spec}")


def resolve(spec: str, lambdas: tuple[float, ...]) -> dict[float, str]:
    """λ → absolute checkpoint path for every λ of a curve, or one :class:`InputError` line."""
    mapping = _mapping(spec)
    path = Path(spec).expanduser()
    if mapping is None and path.is_file():
        return {lmbda: str(path.resolve()) for lmbda in lambdas}
    if mapping is None and not path.is_dir():
        raise InputError(f"--init-weights: no such file or folder {spec}")
    out: dict[float, str] = {}
    for lmbda in lambdas:
        if mapping is not None:
            hits = [Path(f) for k, f in mapping.items() if _same(k, lmbda)]
            where = "the mapping"
        else:
            hits, where = _named(path, lmbda), f"folder {path}"
        if not hits:
            raise InputError(f"--init-weights: λ {lmbda:g} has no checkpoint in {where}")
        if len(hits) > 1:
            raise InputError(f"--init-weights: λ {lmbda:g} matches {len(hits)} files in {where}: "
                             f"{', '.join(p.name for p in hits[:3])}")
        if not hits[0].is_file():
            raise InputError(f"--init-weights: λ {lmbda:g}: no such file {hits[0]}")
        out[lmbda] = str(hits[0].resolve())
    return out


def encode(mapping: dict[float, str]) -> str:
    """The resolved mapping as ``TrainConfig.init_weights``: one path when every λ shares it,
    else a JSON object (what trials receive in their params, folders already scanned)."""
    files = set(mapping.values())
    if len(files) == 1:
        return files.pop()
    return json.dumps({f"{k:g}": v for k, v in mapping.items()}, sort_keys=True)


def weights_for(spec: str, lmbda: float) -> str:
    """The checkpoint the λ model starts from (a file, a folder or a mapping: see the module)."""
    return resolve(spec, (lmbda,))[lmbda]


def check_fit(model_name: str, mapping: dict[float, str]) -> None:
    """Load every distinct file strictly into ``model_name`` (names and shapes of its state_dict);
    a misfit raises one :class:`~trainable.errors.CheckpointError` line naming the λ."""
    from .checkpoint import load_weights
    from .errors import CheckpointError
    from .models import create_model

    model = create_model(model_name)
    checked: set[str] = set()
    for lmbda, path in mapping.items():
        if path in checked:
            continue
        try:
            load_weights(model, path)
        except CheckpointError as exc:
            raise CheckpointError(f"--init-weights λ {lmbda:g}: {exc}") from None
        checked.add(path)
