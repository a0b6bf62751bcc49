"""The ``train_gan`` call, executed INSIDE the sandbox: build the networks, train, report raw data.

The sandbox cannot see ``reference/``, so the grader sends each network as plain data: a layer
spec and its initial weights (the grader's own copy's ``state_dict``, as arrays). Here the
networks are rebuilt layer by layer under the same container name, so that the ``state_dict``
keys are the reference model's (``net.0.weight``, ...), loaded strictly, handed to the student's
``train_gan`` with the data and a ``torch.Generator``, and reported back as they are afterwards.
Nothing here is judged; a student who patches this module only changes their own raw numbers.

Call::

    {"kind": "train_gan", "id": str, "wall_s": float, "cpu_s": float,
     "generator": {"container": "net", "layers": [LAYER, ...], "names": [str, ...], "shapes": [[int, ...], ...]},
     "generator_weights": float32 array (every entry of the state_dict, flattened, in ``names`` order),
     "discriminator": {...same...}, "discriminator_weights": float32 array,
     "data": float32 array [N, d], "steps": int, "batch_size": int, "lr": float, "latent_dim": int,
     "rng_seed": int, "torch_seed": int, "max_history": int}

(the weights travel as one flat array per network, so that the call's JSON part stays small and
array-free: it is what the TA's results record of a failing call).

with ``LAYER`` one of ``{"type": "linear", "in_features": int, "out_features": int}``,
``{"type": "relu"}``, ``{"type": "leaky_relu", "negative_slope": float}``, ``{"type": "sigmoid"}``,
``{"type": "tanh"}``.

Result::

    {"returned": {"type": str, "keys": [str, ...]},
     "history": {"d_loss": HISTORY, "g_loss": HISTORY},
     "generator": {"state": {name: float64 array}, "problems": [str, ...]},
     "discriminator": {...same...}}

where ``HISTORY`` is ``{"type": str, "length": int, "values": float64 array | None,
"problem": str | None}``: ``values`` is present when the entry is a list, tuple or 1-D
tensor/array of at most ``max_history`` numbers (Python numbers or one-element tensors).
An exception raised by ``train_gan`` is returned as ``raised`` (see ``calls._raised``).
"""
from __future__ import annotations

import numbers

import numpy as np
import torch
from torch import nn

from grader.sandbox.calls import CallError, _lookup, _raised, to_float64_array

FUNCTION = "train_gan"
HISTORY_KEYS = ("d_loss", "g_loss")
MAX_STATE_ENTRIES = 64          # more entries than this in a returned state_dict: reported as a count
MAX_STATE_NUMEL = 1 << 20       # a larger returned tensor: its shape is reported, not its values

#: The network spec's one home (the grader's ``grader.checks.workhouse.networks`` describes its
#: networks with it; this module rebuilds them): layer type -> (class, constructor arguments as
#: (spec key, type)). Nothing here imports ``reference``: the zygotes import this module.
LAYERS: dict[str, tuple[type[nn.Module], tuple[tuple[str, type], ...]]] = {
    "linear": (nn.Linear, (("in_features", int), ("out_features", int))),
    "relu": (nn.ReLU, ()),
    "leaky_relu": (nn.LeakyReLU, (("negative_slope", float),)),
    "sigmoid": (nn.Sigmoid, ()),
    "tanh": (nn.Tanh, ()),
}
_LAYER_TYPES = {cls: kind for kind, (cls, _) in LAYERS.items()}


def build_layer(spec: dict) -> nn.Module:
    """One layer from its plain-data spec (see the module docstring)."""
    kind = spec.get("type")
    if kind not in LAYERS:
        raise CallError(f"unknown layer type {kind!r} in the network spec")
    cls, args = LAYERS[kind]
    return cls(*(cast(spec[key]) for key, cast in args))


def describe_layer(layer: nn.Module) -> dict:
    """The plain-data spec of one layer (the inverse of ``build_layer``)."""
    kind = _LAYER_TYPES.get(type(layer))
    if kind is None:
        raise TypeError(f"layer {type(layer).__name__} has no spec")
    return {"type": kind, **{key: cast(getattr(layer, key)) for key, cast in LAYERS[kind][1]}}


def describe_network(module: nn.Module) -> tuple[dict, np.ndarray]:
    """A network made of one ``nn.Sequential`` child as a plain spec and its flat float32 weights
    (every ``state_dict`` entry, flattened, in order): what the grader sends in a call."""
    children = list(module.named_children())
    if len(children) != 1 or not isinstance(children[0][1], nn.Sequential):
        raise TypeError(f"{type(module).__name__} is not one nn.Sequential: cannot describe it as data")
    container, seq = children[0]
    state = module.state_dict()
    flat = np.concatenate([t.detach().to(torch.float32).reshape(-1).numpy() for t in state.values()])
    return ({"container": container, "layers": [describe_layer(layer) for layer in seq], "names": list(state),
             "shapes": [list(t.shape) for t in state.values()]}, flat.astype(np.float32))


class SpecNet(nn.Module):
    """``x -> container(x)`` with ``container`` an ``nn.Sequential`` of the spec's layers."""

    def __init__(self, container: str, layers: list[dict]):
        super().__init__()
        if not container.isidentifier():
            raise CallError(f"bad container name {container!r} in the network spec")
        self._container = container
        self.add_module(container, nn.Sequential(*[build_layer(layer) for layer in layers]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return getattr(self, self._container)(x)


def unflatten(names: list[str], shapes: list[list[int]], flat: np.ndarray) -> dict[str, torch.Tensor]:
    """``{name: tensor of shape}`` cut from ``flat`` in order; the sizes must add up exactly."""
    sizes = [int(np.prod(shape, dtype=np.int64)) for shape in shapes]
    flat = np.asarray(flat, dtype=np.float32).reshape(-1)
    if len(names) != len(shapes) or sum(sizes) != flat.size:
        raise CallError(f"the network spec lists {sum(sizes)} weights for {len(names)} names, "
                        f"but {flat.size} values came")
    ends = np.cumsum(sizes)
    return {str(name): torch.from_numpy(flat[end - size:end].reshape(shape).copy())
            for name, shape, size, end in zip(names, shapes, sizes, ends)}


def build_network(spec: dict, flat: np.ndarray) -> nn.Module:
    """The network of ``spec`` with its initial weights ``flat`` loaded strictly (names and shapes)."""
    net = SpecNet(str(spec.get("container", "net")), list(spec["layers"]))
    state = unflatten(list(spec["names"]), [list(s) for s in spec["shapes"]], flat)
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise CallError(f"the grader's weights do not fit the network spec: {exc}") from None
    return net


def _number(item: object) -> float | None:
    if isinstance(item, bool):
        return None
    if isinstance(item, numbers.Real):
        return float(item)
    if isinstance(item, torch.Tensor) and item.numel() == 1:
        return float(item.detach().to("cpu", torch.float64).reshape(()))
    if isinstance(item, np.ndarray) and item.size == 1 and item.dtype.kind in "fiu":
        return float(item.reshape(()))
    return None


def describe_history(entry: object, max_length: int) -> dict:
    """What the student returned under one history key, and its values when they are numbers."""
    out: dict = {"type": f"{type(entry).__module__}.{type(entry).__qualname__}", "length": -1,
                 "values": None, "problem": None}
    if isinstance(entry, (torch.Tensor, np.ndarray)):
        if entry.ndim != 1:
            out["problem"] = f"a {entry.ndim}-D {type(entry).__name__} of shape {list(entry.shape)}, not a list"
            return out
    elif not isinstance(entry, (list, tuple)):
        out["problem"] = "not a list"
        return out
    out["length"] = len(entry)
    if len(entry) > max_length:
        out["problem"] = f"{len(entry)} entries"
        return out
    values = []
    for i, item in enumerate(list(entry)):
        number = _number(item)
        if number is None:
            out["problem"] = (f"entry {i} is a {type(item).__module__}.{type(item).__qualname__}, "
                              "not a number")
            return out
        values.append(number)
    out["values"] = np.asarray(values, dtype=np.float64)
    return out


def report_state(module: nn.Module) -> dict:
    """The module's ``state_dict`` after training, as float64 arrays, and anything odd about it."""
    problems: list[str] = []
    state: dict[str, np.ndarray] = {}
    try:
        items = list(module.state_dict().items())
    except Exception as exc:  # the student's code may have broken the module
        return {"state": {}, "problems": [f"state_dict() raised {_raised(exc)['message']}"]}
    if len(items) > MAX_STATE_ENTRIES:
        return {"state": {}, "problems": [f"the state_dict has {len(items)} entries"]}
    for name, tensor in items:
        if not isinstance(tensor, torch.Tensor):
            problems.append(f"{name} is a {type(tensor).__name__}, not a tensor")
        elif tensor.numel() > MAX_STATE_NUMEL:
            problems.append(f"{name} has shape {list(tensor.shape)}")
        elif not (tensor.is_floating_point()):
            problems.append(f"{name} has dtype {tensor.dtype}")
        else:
            state[str(name)] = to_float64_array(tensor)
    return {"state": state, "problems": problems}


def warm_up() -> None:
    """Build one Adam optimiser: its first construction imports ``torch._dynamo`` (about 0.8 s of
    CPU), which would otherwise be paid inside every submission's training call. Run at import, so
    that a process that imports this module before forking (the zygote) pays it once."""
    torch.optim.Adam([nn.Parameter(torch.zeros(1))], lr=1e-3)


warm_up()


def execute(namespace: dict, call: dict) -> dict:
    """Run the student's ``train_gan`` on freshly built networks; see the module docstring."""
    fn = _lookup(namespace, FUNCTION)
    generator = build_network(call["generator"], call["generator_weights"])
    discriminator = build_network(call["discriminator"], call["discriminator_weights"])
    data = torch.from_numpy(np.array(call["data"], dtype=np.float32, copy=True))
    rng = torch.Generator().manual_seed(int(call["rng_seed"]))
    torch.manual_seed(int(call["torch_seed"]))   # a loop that forgets ``rng`` is still reproducible
    try:
        returned = fn(generator, discriminator, data, steps=int(call["steps"]),
                      batch_size=int(call["batch_size"]), lr=float(call["lr"]),
                      latent_dim=int(call["latent_dim"]), rng=rng)
    except Exception as exc:  # the student's exception is data
        return _raised(exc)
    max_history = int(call.get("max_history", 4 * int(call["steps"]) + 16))
    out: dict = {"returned": {"type": f"{type(returned).__module__}.{type(returned).__qualname__}", "keys": []},
                 "history": {}}
    if isinstance(returned, dict):
        out["returned"]["keys"] = sorted(str(k)[:100] for k in list(returned)[:20])
        for key in HISTORY_KEYS:
            if key in returned:
                out["history"][key] = describe_history(returned[key], max_history)
    out["generator"] = report_state(generator)
    out["discriminator"] = report_state(discriminator)
    return out
