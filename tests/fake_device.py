"""A fake accelerator every machine has: tensors that say they live on ``cpu:1`` while their
values are computed on the CPU, so a whole trial's device code runs and is checked without a GPU.

``cpu:1`` behaves as a GPU does where it matters and as the CPU does everywhere else: autograd,
fused Adam and autocast accept it, and ``device.type == "cuda"`` paths (streams, pinned memory)
are not taken. Inside :class:`FakeDevice`:

* a factory (``torch.zeros(..., device=x.device)``) or a copy (``t.to(x.device)``) aimed at
  ``cpu:1`` gives a tensor on the fake device;
* an op where a CPU tensor with dimensions meets one on the fake device raises
  :class:`DeviceLeak` naming the line that made the call (CUDA raises "Expected all tensors to
  be on the same device" there; a 0-dim CPU tensor is a scalar, allowed as CUDA allows it);
* every copy from the host to the fake device (``t.to(device)``, ``torch.tensor(data, device=)``)
  is recorded with its call site in ``host_to_device``: on a GPU each is a blocking copy of
  pageable memory, the kind of hidden sync a CPU sync counter cannot see.
"""
from __future__ import annotations

import linecache
import sys
from pathlib import Path

import torch
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode

FAKE = torch.device("cpu", 1)
ROOT = str(Path(__file__).resolve().parents[1])
aten = torch.ops.aten


class DeviceLeak(RuntimeError):
    """A CPU tensor met a tensor on the (fake) accelerator: a CUDA run fails here."""


class OnFake(torch.Tensor):
    """A CPU tensor (``elem``) that reports the fake device."""

    elem: torch.Tensor

    @staticmethod
    def __new__(cls, elem: torch.Tensor):
        out = torch.Tensor._make_wrapper_subclass(cls, elem.size(), strides=elem.stride(),
                                                  storage_offset=elem.storage_offset(), dtype=elem.dtype,
                                                  device=FAKE, requires_grad=elem.requires_grad)
        out.elem = elem
        return out

    def __tensor_flatten__(self):      # a traceable subclass: Module.to() swaps parameters in place
        return ["elem"], None

    @staticmethod
    def __tensor_unflatten__(inner, meta, outer_size, outer_stride):
        return OnFake(inner["elem"])

    def tolist(self):                  # a device → host read, as on CUDA
        return torch.Tensor.tolist(self.elem)

    def numpy(self, *, force: bool = False):
        raise TypeError(f"can't convert {FAKE} device type tensor to numpy. Use Tensor.cpu() to copy the tensor "
                        f"to host memory first (at {call_site()})")

    def __repr__(self) -> str:
        return f"OnFake({self.elem!r})"

    def __reduce_ex__(self, protocol):
        # saved as the CPU tensor a CUDA checkpoint becomes under torch.load(map_location="cpu")
        return self.elem.detach().clone().__reduce_ex__(protocol)

    @classmethod
    def __torch_dispatch__(cls, func, types, args=(), kwargs=None):
        return _run(None, func, args, kwargs or {})


def call_site() -> str:
    """The innermost line outside torch, this file and other dispatch modes, and the innermost
    project line above it."""
    inner = project = None
    frame = sys._getframe(1)
    while frame is not None and project is None:
        name = frame.f_code.co_filename
        if "/torch/" not in name and name != __file__ and not frame.f_code.co_name.startswith("__torch_"):
            inner = inner or frame
            if name.startswith(ROOT):
                project = frame
        frame = frame.f_back
    if inner is None:
        return "?"

    def show(f) -> str:
        name = f.f_code.co_filename
        where = name[len(ROOT) + 1:] if name.startswith(ROOT) else Path(name).name
        return f"{where}:{f.f_lineno} ({f.f_code.co_name}): {linecache.getline(name, f.f_lineno).strip()}"
    return show(inner) if project in (None, inner) else f"{show(inner)} via {show(project)}"


def _map(fn, x):
    """``fn`` on every tensor in nested lists, tuples and dicts (an op's arguments and results)."""
    if isinstance(x, torch.Tensor):
        return fn(x)
    if isinstance(x, (list, tuple)):
        return type(x)(_map(fn, v) for v in x)
    if isinstance(x, dict):
        return {k: _map(fn, v) for k, v in x.items()}
    return x


def _tensors(x, out: list) -> list:
    if isinstance(x, torch.Tensor):
        out.append(x)
    elif isinstance(x, (list, tuple)):
        for v in x:
            _tensors(v, out)
    elif isinstance(x, dict):
        for v in x.values():
            _tensors(v, out)
    return out


def _unwrap(t):
    return t.elem if isinstance(t, OnFake) else t


def _on_fake(device) -> bool:
    return device is not None and torch.device(device) == FAKE


def _run(mode: "FakeDevice | None", func, args, kwargs):
    flat = _tensors(kwargs, _tensors(args, []))
    fake_in = [t for t in flat if isinstance(t, OnFake)]
    target = kwargs.get("device")
    if func is aten._to_copy.default or func is aten.copy_.default:
        src = args[1] if func is aten.copy_.default else args[0]
        if func is aten.copy_.default:
            to_fake = isinstance(args[0], OnFake)
        else:
            to_fake = _on_fake(target) if target is not None else isinstance(src, OnFake)
        if to_fake and not isinstance(src, OnFake) and mode is not None:
            mode.host_to_device.append(f"{func.overloadpacket.__name__} {tuple(src.shape)}: {call_site()}")
    elif fake_in:
        cpu = [t for t in flat if not isinstance(t, OnFake) and t.dim() > 0]
        if cpu:
            raise DeviceLeak(f"{func}: a CPU tensor {tuple(cpu[0].shape)} meets tensors on {FAKE}; "
                             f"made or used at {call_site()}")
        to_fake = True
    else:
        to_fake = _on_fake(target)
    if _on_fake(target):
        kwargs = {**kwargs, "device": torch.device("cpu")}
    out = func(*_map(_unwrap, args), **_map(_unwrap, kwargs))
    if not to_fake:
        return out
    by_elem = {id(t.elem): t for t in fake_in}

    def rewrap(t):
        same = by_elem.get(id(t))
        return OnFake(t) if same is None else same     # in-place and out= ops return their argument
    return _map(rewrap, out)


class _FromPythonData(TorchFunctionMode):
    """``torch.tensor(data, device=fake)`` (and ``as_tensor``, ``new_tensor``) would build the tensor
    on the real CPU below any dispatch mode: build it on the host, then copy it through the mode."""

    FUNCTIONS = {torch.tensor, torch.as_tensor, torch.asarray, torch.Tensor.new_tensor}

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in self.FUNCTIONS:
            target = kwargs.get("device")
            if target is None and func is torch.Tensor.new_tensor:
                target = args[0].device
            if _on_fake(target):
                data = args[1] if func is torch.Tensor.new_tensor else args[0]
                if isinstance(data, torch.Tensor):     # a copy of a tensor, from wherever it is
                    dtype = kwargs.get("dtype") or (args[0].dtype if func is torch.Tensor.new_tensor else data.dtype)
                    return data.detach().clone().to(FAKE, dtype)
                out = func(*args, **{**kwargs, "device": torch.device("cpu")})
                return out.to(FAKE)
        return func(*args, **kwargs)


class FakeDevice(TorchDispatchMode):
    """Runs ops on fake-device tensors (see the module docstring); ``host_to_device`` lists
    every host → device copy made inside it, with its call site."""

    def __init__(self) -> None:
        super().__init__()
        self.host_to_device: list[str] = []

    def __enter__(self):
        self._python_data = _FromPythonData()
        self._python_data.__enter__()
        return super().__enter__()

    def __exit__(self, *exc):
        try:
            return super().__exit__(*exc)
        finally:
            self._python_data.__exit__(*exc)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        return _run(self, func, args, kwargs or {})
