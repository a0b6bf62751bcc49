"""What a check asks the student's code to do, executed INSIDE the sandbox.

A *call* is a plain dict (JSON values and numpy arrays, decoded by ``protocol``); ``execute_call``
runs it against the student's module namespace and returns plain data: numpy float64 arrays,
numbers, strings, lists. Nothing computed here is trusted: this module only exercises the
student's code and reports raw outputs. Every verdict is computed outside the sandbox from those
outputs, so a student who monkeypatches torch, numpy or this module can change only their own
raw numbers, never a comparison or an expected value (none ever enters this process).

Call kinds
----------
``{"kind": "function", "name": str, "args": [...], "kwargs": {...}, "grad": [int, ...]}``
    Converts every numpy array in ``args``/``kwargs`` to a torch tensor of the same dtype, calls
    ``namespace[name](*args, **kwargs)`` and returns ``value`` (float64 array), the result's
    ``type``, ``dtype`` and ``shape``, ``args_after`` (the array arguments after the call: the
    grader compares them with what it sent), and, for each positional index in ``grad``, the
    gradient of ``result.sum()`` with respect to that argument (``None`` when no gradient
    reached it). The grader recomputes what it judges from the raw arrays (the shape from
    ``value`` itself, changes from ``args_after``); ``type``, ``dtype`` and ``shape`` are
    only for messages.
    An exception raised by the student's function is returned as ``raised`` (class name and the
    names of its bases) with ``message``: raising can be the expected behaviour.
``{"kind": "fvbn", "class": str, "dim": int, "param_seed": int, "construct_seed": int, "forward": array | None,
  "log_prob": array | None, "samples": [[n, seed], ...]}``
    Builds ``namespace[class](dim)``, re-draws every ``nn.Parameter`` from ``param_seed`` (so the
    properties must hold whatever the parameter values), then returns the raw outputs of
    ``forward``, ``log_prob`` and ``sample(n, generator=torch.Generator().manual_seed(seed))``.
    The grader makes the same call under two parameter seeds and requires different outputs:
    a re-draw skipped (by a patched harness) or outputs that ignore the parameters fail.
"""
from __future__ import annotations

import traceback
from typing import Any

import numpy as np
import torch

#: Standard deviation of the re-drawn FVBN parameters: large enough that the conditionals differ
#: visibly from 1/2, small enough that probabilities stay away from 0 and 1 for the sampling test.
FVBN_PARAM_STD = 0.5


class CallError(Exception):
    """The call cannot be made as asked (missing name, wrong type of object): a clear message."""


def execute_call(namespace: dict, call: dict) -> dict:
    """Run one call against the student's namespace; see the module docstring for the kinds."""
    kind = call.get("kind")
    if kind == "function":
        return _call_function(namespace, call)
    if kind == "fvbn":
        return _call_fvbn(namespace, call)
    if kind == "train_gan":
        from grader.sandbox import workhouse_calls  # only present once the workhouse check exists

        return workhouse_calls.execute(namespace, call)
    raise CallError(f"unknown call kind {kind!r}")


def _lookup(namespace: dict, name: str) -> Any:
    if name not in namespace:
        raise CallError(f"`{name}` is not defined in your submission")
    obj = namespace[name]
    if not callable(obj):
        raise CallError(f"`{name}` is defined but is not callable (it is a {type(obj).__name__})")
    return obj


def _to_torch(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return torch.from_numpy(value.copy())
    return value


def to_float64_array(value: Any) -> np.ndarray:
    """The student's result as a float64 numpy array, whatever tensor-like thing it is."""
    if isinstance(value, torch.Tensor):
        return value.detach().to("cpu", torch.float64).numpy().copy()
    if isinstance(value, (bool, int, float, np.number, np.ndarray, list, tuple)):
        arr = np.asarray(value, dtype=np.float64)
        return arr.copy()
    raise CallError(f"returned a {type(value).__module__}.{type(value).__qualname__}, not a tensor or number")


def _describe(value: Any) -> dict:
    if isinstance(value, torch.Tensor):
        return {
            "type": "torch.Tensor",
            "dtype": str(value.dtype).replace("torch.", ""),
            "shape": list(value.shape),
            "has_grad_fn": value.grad_fn is not None,
            "requires_grad": bool(value.requires_grad),
        }
    return {"type": f"{type(value).__module__}.{type(value).__qualname__}", "dtype": None,
            "shape": list(np.shape(value)), "has_grad_fn": False, "requires_grad": False}


def _raised(exc: BaseException) -> dict:
    names = [cls.__name__ for cls in type(exc).__mro__]
    frames = traceback.extract_tb(exc.__traceback__)
    student = [f for f in frames if "grader/sandbox" not in f.filename.replace("\\", "/")]
    where = f" (line {student[-1].lineno} of {student[-1].filename.rsplit('/', 1)[-1]})" if student else ""
    return {"raised": names[0], "raised_bases": names, "message": f"{names[0]}: {exc}{where}"[:2000]}


def _call_function(namespace: dict, call: dict) -> dict:
    fn = _lookup(namespace, call["name"])
    args = [_to_torch(a) for a in call.get("args", [])]
    kwargs = {k: _to_torch(v) for k, v in call.get("kwargs", {}).items()}
    grad_idx = [int(i) for i in call.get("grad", [])]
    for i in grad_idx:
        args[i].requires_grad_(True)
    try:
        result = fn(*args, **kwargs)
    except Exception as exc:  # the student's exception is data: raising may be what is asked
        return _raised(exc)
    out: dict = _describe(result)
    out["value"] = to_float64_array(result)
    out["args_after"] = [
        a.detach().to(torch.float64).numpy().copy() if isinstance(a, torch.Tensor) else None for a in args
    ]
    if grad_idx:
        out["grads"] = _gradients(result, [args[i] for i in grad_idx])
    return out


def _gradients(result: Any, inputs: list) -> list:
    """Gradient of ``result.sum()`` w.r.t. each input, or an explanation when none reaches it."""
    if not isinstance(result, torch.Tensor) or result.grad_fn is None:
        return [None for _ in inputs]
    try:
        grads = torch.autograd.grad(result.sum(), inputs, allow_unused=True)
    except Exception as exc:
        return [{"error": _raised(exc)["message"]} for _ in inputs]
    return [None if g is None else g.detach().to(torch.float64).numpy().copy() for g in grads]


def redraw_parameters(module: torch.nn.Module, seed: int, std: float = FVBN_PARAM_STD) -> int:
    """Overwrite every parameter with N(0, std^2) draws from ``seed``, in name order; return the count."""
    gen = torch.Generator().manual_seed(seed)
    count = 0
    with torch.no_grad():
        for _, p in sorted(module.named_parameters(), key=lambda item: item[0]):
            p.copy_(torch.randn(p.shape, generator=gen, dtype=torch.float64).to(p.dtype) * std)
            count += p.numel()
    return count


def _step(fn, *args, **kwargs) -> dict:
    """Run one method of the student's model; its output or its exception, as data."""
    try:
        result = fn(*args, **kwargs)
    except Exception as exc:
        return _raised(exc)
    out = _describe(result)
    out["value"] = to_float64_array(result)
    return out


def _call_fvbn(namespace: dict, call: dict) -> dict:
    cls = _lookup(namespace, call.get("class", "FVBN"))
    # the model is built under ``construct_seed`` (the same for both draws of a dimension), so a
    # skipped re-draw shows as identical outputs, whatever the constructor draws
    torch.manual_seed(int(call.get("construct_seed", call["param_seed"])))
    try:
        model = cls(int(call["dim"]))
    except Exception as exc:
        return {"construct": _raised(exc)}
    if not isinstance(model, torch.nn.Module):
        return {"construct": {"raised": "TypeError", "raised_bases": ["TypeError"],
                              "message": f"FVBN({call['dim']}) is a {type(model).__name__}, not a torch.nn.Module"}}
    out: dict = {"n_parameters": redraw_parameters(model, int(call["param_seed"]))}
    with torch.no_grad():
        if call.get("forward") is not None:
            out["forward"] = _step(model, torch.from_numpy(call["forward"].astype(np.float32)))
        if call.get("log_prob") is not None:
            out["log_prob"] = _step(model.log_prob, torch.from_numpy(call["log_prob"].astype(np.float32)))
        out["samples"] = [
            _step(model.sample, int(n), generator=torch.Generator().manual_seed(int(seed)))
            for n, seed in call.get("samples", [])
        ]
    return out
