"""Suspected tampering: did the student's top level replace the harness's own functions or modules?

``snapshot()`` runs in the zygote (or the portable child) before any student code; ``changes``
compares the state after the module's load with it. The answer is information for the TA only:
it is computed in the student's own process, which can forge it, so no verdict rests on it (the
judges recompute what they judge from raw arrays instead).
"""
from __future__ import annotations

import sys

#: The harness modules that run next to student code, and the library functions they rely on.
WATCHED_MODULES = (
    "grader.sandbox.calls", "grader.sandbox.runner", "grader.sandbox.protocol", "grader.sandbox.inside",
    "grader.sandbox.rlimits", "grader.sandbox.loader", "grader.sandbox.workhouse_calls",
    "grader.sandbox.portable_child", "grader.sandbox.tamper",
)
WATCHED_ATTRIBUTES = (
    ("torch", "from_numpy"), ("torch.autograd", "grad"), ("torch", "Tensor"), ("torch", "equal"),
    ("numpy", "asarray"), ("numpy", "array"), ("builtins", "isinstance"), ("builtins", "len"),
)
MAX_REPORTED = 20

Snapshot = dict[str, object]
#: The state before any student code ran (``record()``: the zygote, the portable child).
BASELINE: Snapshot | None = None


def record() -> None:
    """Take the baseline: call once every harness module is imported, before student code."""
    global BASELINE
    BASELINE = snapshot()


def since_baseline() -> list[str]:
    """``changes(BASELINE)``, or nothing when no baseline was taken."""
    return changes(BASELINE) if BASELINE is not None else []


def _module_state(module: object) -> dict[str, int]:
    try:
        return {name: id(value) for name, value in dict(vars(module)).items()
                if callable(value) or type(value).__name__ == "module"}
    except Exception:  # noqa: BLE001 - a module whose __dict__ was replaced
        return {}


def snapshot() -> Snapshot:
    """The identities of the watched modules, their functions and the watched library attributes."""
    modules = {name: (id(sys.modules[name]), _module_state(sys.modules[name]))
               for name in WATCHED_MODULES if name in sys.modules}
    attributes = {}
    for module_name, attribute in WATCHED_ATTRIBUTES:
        module = sys.modules.get(module_name)
        if module is not None and hasattr(module, attribute):
            attributes[f"{module_name}.{attribute}"] = id(getattr(module, attribute))
    return {"modules": modules, "attributes": attributes}


def changes(before: Snapshot) -> list[str]:
    """What differs from ``before``: ``"grader.sandbox.calls._call_function replaced"``, ...;
    empty when nothing did (or when the check itself was defeated)."""
    found: list[str] = []
    try:
        for name, (module_id, state) in before["modules"].items():
            module = sys.modules.get(name)
            if module is None:
                found.append(f"module {name} removed from sys.modules")
                continue
            if id(module) != module_id:
                found.append(f"module {name} replaced in sys.modules")
                continue
            now = _module_state(module)
            found += [f"{name}.{attr} replaced" for attr, ident in state.items() if now.get(attr, ident) != ident]
            found += [f"{name}.{attr} deleted" for attr in state if attr not in now]
        for qualified, ident in before["attributes"].items():
            module_name, attribute = qualified.rsplit(".", 1)
            module = sys.modules.get(module_name)
            if module is None or id(getattr(module, attribute, None)) != ident:
                found.append(f"{qualified} replaced")
    except Exception as error:  # noqa: BLE001 - the check must never cost the run
        found.append(f"the tampering check failed: {type(error).__name__}")
    return found[:MAX_REPORTED]
