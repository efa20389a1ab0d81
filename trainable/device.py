"""Which device a run trains on, and, when CUDA is unusable, one line saying why.

A CUDA build of torch needs a driver at least as new as its CUDA version (torch 2.14's
default wheels are built for CUDA 13). With an older driver ``torch.cuda.is_available()``
is simply False: a GPU trial would quietly train on the CPU. :func:`cuda_problem` names
the cause (CPU-only build, driver error, no device visible) so callers can fail loudly.
"""
from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterable, Sequence
from contextlib import contextmanager
from pathlib import Path

import torch

from .errors import TrainingError


def nvidia_driver() -> str | None:
    """The NVIDIA driver version nvidia-smi reports, or None (no nvidia-smi, no GPU)."""
    if shutil.which("nvidia-smi") is None:
        return None
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return None
    versions = out.stdout.split()
    return versions[0] if out.returncode == 0 and versions else None


def gpu_present() -> bool:
    """An NVIDIA GPU is on this machine, whether or not torch can use it."""
    return Path("/proc/driver/nvidia/gpus").is_dir() or any(Path("/dev").glob("nvidia[0-9]*")) \
        or nvidia_driver() is not None


def cuda_problem() -> str | None:
    """None when torch can use CUDA; otherwise one line naming the cause."""
    build = torch.version.cuda
    if build is None:
        return f"torch {torch.__version__} is a CPU-only build (torch.version.cuda=None): install a CUDA build"
    if torch.cuda.is_available():
        return None
    try:
        torch.cuda.init()
        error = "no CUDA device visible"
    except Exception as exc:   # torch raises RuntimeError / AssertionError with the driver's message
        error = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    driver = nvidia_driver()
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    return (f"torch {torch.__version__} (built for CUDA {build}) cannot use CUDA: torch.cuda.is_available()=False, "
            f"{error.rstrip('.')} (NVIDIA driver: {driver or 'not found'}; CUDA_VISIBLE_DEVICES={visible}); "
            f"a CUDA {build} build needs a driver that supports CUDA {build}, or install a torch built for an "
            "older CUDA")


def require_cuda(why: str) -> None:
    """Raise :class:`TrainingError` (one line) when CUDA is unusable; ``why`` says who expected it."""
    problem = cuda_problem()
    if problem is not None:
        raise TrainingError(f"{why}, but {problem}")


def resolve_device(name: str) -> torch.device:
    """``auto``: CUDA when usable, else CPU; an explicit ``cuda`` that cannot work raises."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda":
        require_cuda(f"device {name} requested")
    return device


def describe(device: torch.device) -> str:
    """One line for the logs: the device, its name, and the torch build."""
    build = f"torch {torch.__version__}, CUDA build {torch.version.cuda}"
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        return f"{device} ({torch.cuda.get_device_name(index)}; {build}, driver {nvidia_driver() or '?'})"
    return f"{device} ({torch.get_num_threads()} threads; {build})"


def trial_devices(gpu_ids: Sequence, visible: str | None = None) -> tuple[str, ...]:
    """The torch device of every GPU Ray gave a trial, as Ray Train maps them: Ray's ids are the
    node's GPU numbers, torch numbers the GPUs ``CUDA_VISIBLE_DEVICES`` lists (Ray sets it to the
    trial's GPUs, in its own order, unless told not to) from 0, so GPU g is ``cuda:<its position
    there>``; unset, torch sees every GPU and g is ``cuda:g``. ``visible``: the variable's value
    (default: this process's)."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES") if visible is None else visible
    if not gpu_ids:
        return ()
    if visible is None or visible.strip() in ("", "NoDevFiles"):
        return tuple(f"cuda:{int(g)}" for g in gpu_ids)
    listed = [v.strip() for v in visible.split(",")]
    missing = [str(g) for g in gpu_ids if str(g) not in listed]
    if missing:
        raise TrainingError(f"Ray gave this trial GPU(s) {list(map(str, gpu_ids))}, but CUDA_VISIBLE_DEVICES={visible} "
                            f"does not list {', '.join(missing)}")
    return tuple(f"cuda:{listed.index(str(g))}" for g in gpu_ids)


CUBLAS_DETERMINISTIC = ":4096:8"   # cuBLAS's fixed workspace, which its deterministic mode needs


@contextmanager
def kernel_choice(devices: Iterable[torch.device], deterministic: bool):
    """The process's kernel settings while a run trains on ``devices`` (restored after).

    ``deterministic``: the same kernels and reduction orders every run, so two GPU runs of one
    configuration are bit-identical as CPU runs are (paired studies): deterministic algorithms
    (an op without one stops the run with torch's message naming it), no cuDNN autotuning, and
    ``CUBLAS_WORKSPACE_CONFIG`` set now, before the run's first cuBLAS call. Otherwise cuDNN
    autotunes its kernels for the fixed training crop on CUDA (faster, not bit-reproducible)."""
    cudnn = torch.backends.cudnn
    saved = (torch.are_deterministic_algorithms_enabled(), cudnn.benchmark, cudnn.deterministic,
             os.environ.get("CUBLAS_WORKSPACE_CONFIG"))
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", CUBLAS_DETERMINISTIC)
        torch.use_deterministic_algorithms(True)
        cudnn.benchmark, cudnn.deterministic = False, True
    elif any(torch.device(d).type == "cuda" for d in devices):
        cudnn.benchmark = True
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(saved[0])
        cudnn.benchmark, cudnn.deterministic = saved[1], saved[2]
        if saved[3] is None:
            os.environ.pop("CUBLAS_WORKSPACE_CONFIG", None)


@contextmanager
def no_autotuning():
    """cuDNN autotuning off: validation images come in many sizes, and each new shape would be
    autotuned (time and workspace memory) for a single use."""
    saved = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = False
    try:
        yield
    finally:
        torch.backends.cudnn.benchmark = saved
