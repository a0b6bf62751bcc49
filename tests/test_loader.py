"""grader.sandbox.loader, run in a SUBPROCESS (it installs import hooks and builtins), on small,
benign sources written here. Each case: files, mode, a probe run after loading, the expected
result."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from grader.intake import NOTEBOOK_ENTRY, convert_notebook

REPO = Path(__file__).resolve().parents[1]
RESULT = "LOADER-RESULT:"

# The runner: import the given modules first (the sandbox's zygote has torch loaded), load, then
# exec the probe with ``ns`` (the namespace) and ``result`` (a dict printed as JSON on the last
# line): the probe runs after the student's code, like the grader's checks. The loader is loaded
# from its file: it needs nothing else from the grader (and ``grader.sandbox`` imports torch).
RUNNER = textwrap.dedent(f"""
    import importlib, importlib.util, json, sys, time
    workdir, entry, mode, budget, import_budget, probe, preload = sys.argv[1:8]
    for name in filter(None, preload.split(",")):
        importlib.import_module(name)
    spec = importlib.util.spec_from_file_location("loader", {str(REPO / "grader/sandbox/loader.py")!r})
    loader = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(loader)
    started = time.monotonic()
    result = {{}}
    try:
        ns, notes = loader.load_module(workdir, entry, mode, float(budget),
                                       import_timeout_s=None if import_budget == "none" else float(import_budget))
    except loader.SubmissionLoadError as exc:
        result["error"] = str(exc)
    else:
        result["load_s"] = time.monotonic() - started
        result["names"] = sorted(name for name in ns if not name.startswith("__"))
        result["notes"] = notes
        exec(probe, {{"ns": ns, "result": result}})
    print({RESULT!r} + json.dumps(result, default=repr))
""")


def load(tmp_path: Path, files: dict[str, str], entry: str = "solution.py", mode: str = "full",
         budget_s: float = 1.0, import_budget_s: float | None = None, probe: str = "",
         preload: tuple[str, ...] = ()) -> dict:
    workdir = tmp_path / "work"
    workdir.mkdir(parents=True)
    for rel, text in files.items():
        (workdir / rel).parent.mkdir(parents=True, exist_ok=True)
        (workdir / rel).write_text(textwrap.dedent(text), encoding="utf-8")
    completed = subprocess.run(
        [sys.executable, "-c", RUNNER, str(workdir), entry, mode, str(budget_s),
         "none" if import_budget_s is None else str(import_budget_s), textwrap.dedent(probe),
         ",".join(preload)],
        capture_output=True, text=True, timeout=60, cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin", "PYTHONDONTWRITEBYTECODE": "1", "HOME": str(tmp_path)},
    )
    lines = [line for line in completed.stdout.splitlines() if line.startswith(RESULT)]
    assert lines, f"no result (rc {completed.returncode}):\n{completed.stdout}\n{completed.stderr}"
    result = json.loads(lines[-1][len(RESULT):])
    result["stdout"] = completed.stdout
    result["stderr"] = completed.stderr
    return result


# --------------------------------------------------------------------------------------------
# Full mode
# --------------------------------------------------------------------------------------------

def test_full_mode_runs_the_whole_file_as_module_submission(tmp_path):
    result = load(tmp_path, {"solution.py": """
        import pickle
        from dataclasses import dataclass
        EPS = 1e-7
        print("top level ran")

        @dataclass
        class Point:
            x: float

        def double(x):
            return 2 * x

        if __name__ == "__main__":
            raise SystemExit("must not run")
    """}, probe="""
        import sys, pickle
        result["module"] = sys.modules["submission"].__dict__ is ns
        result["double"] = ns["double"](21)
        result["roundtrip"] = pickle.loads(pickle.dumps(ns["Point"](1.5))).x
    """)
    assert result["names"] == ["EPS", "Point", "dataclass", "double", "pickle"]
    assert result["notes"] == []
    assert (result["module"], result["double"], result["roundtrip"]) == (True, 42, 1.5)
    assert "top level ran" in result["stdout"]


SYNTAX_CASES = [
    ("x = 1\ny = 2\nz = = 3\n", "SyntaxError at line 3: invalid syntax\n    z = = 3"),
    ("def f(:\n    pass\n", "SyntaxError at line 1: invalid syntax\n    def f(:"),
    ("def f():\nreturn 1\n", "IndentationError at line 2: expected an indented block after "
                            "function definition on line 1\n    return 1"),
]


@pytest.mark.parametrize("source, message", SYNTAX_CASES, ids=["invalid", "def", "indent"])
def test_syntax_error_names_the_line(tmp_path, source, message):
    assert load(tmp_path, {"solution.py": source})["error"] == message


def test_template_raising_not_implemented_loads(tmp_path):
    result = load(tmp_path, {"solution.py": '''
        """Homework 3 template."""
        def elbo(x, recon, mu, logvar):
            """Return the ELBO per example."""
            # TODO
            raise NotImplementedError

        class FVBN:
            def __init__(self, d):
                raise NotImplementedError
    '''})
    assert (result["names"], result["notes"]) == (["FVBN", "elbo"], [])


def test_unavailable_import_names_the_module(tmp_path):
    result = load(tmp_path, {"solution.py": """
        import json
        try:
            import sympy
        except ModuleNotFoundError as exc:
            MESSAGE, NAME = str(exc), exc.name
    """}, probe="""
        import importlib
        result["message"], result["name"] = ns["MESSAGE"], ns["NAME"]
        try:
            importlib.import_module("definitely_not_a_module")
        except ModuleNotFoundError as exc:
            result["again"] = str(exc)
    """)
    available = ("available: IPython, matplotlib, mpl_toolkits, numpy, pandas, scipy, sklearn, "
                 "torch, tqdm, the standard library and your own modules)")
    assert (result["names"], result["notes"]) == (["MESSAGE", "NAME", "json"], [])
    assert result["message"] == ("No module named 'sympy' (not available in the grading environment; "
                                 f"{available}")
    assert result["name"] == "sympy"
    unavailable = ("unavailable import at line 1: No module named 'sympy' (not available in the "
                   f"grading environment; {available}")
    assert load(tmp_path / "probe", {"solution.py": "import sympy\n"})["error"] == unavailable
    assert load(tmp_path / "probe2", {"solution.py": "import sympy\n"}, mode="definitions")["error"] == unavailable
    assert result["again"] == ("No module named 'definitely_not_a_module' (not available in the "
                               f"grading environment; {available}")


def test_allowed_packages_keep_their_own_dependencies(tmp_path):
    # numpy and pandas import modules outside the allowlist (dateutil, pytz...) for themselves;
    # the student asking for one of those directly is refused, whatever the import order.
    result = load(tmp_path, {"solution.py": """
        import numpy as np
        import pandas as pd
        FRAME = pd.DataFrame({"a": np.arange(3)})
        def late():
            import dateutil
    """}, probe="""
        import sys
        result["dateutil_loaded"] = "dateutil" in sys.modules
        try:
            ns["late"]()
        except ModuleNotFoundError as exc:
            result["late"] = exc.name
    """)
    assert result["notes"] == []
    assert (result["dateutil_loaded"], result["late"]) == (True, "dateutil")


def test_a_module_loaded_by_torch_is_still_refused(tmp_path):
    # as in the sandbox's zygote, torch (and with it typing_extensions) is loaded before the student
    result = load(tmp_path, {"solution.py": """
        import torch
        try:
            import typing_extensions
        except ModuleNotFoundError as exc:
            REFUSED = exc.name
        def later():
            return torch.ones(2).sum().item()
    """}, preload=("torch",), probe='result["refused"], result["later"] = ns["REFUSED"], ns["later"]()')
    assert (result["notes"], result["names"]) == ([], ["REFUSED", "later", "torch"])
    assert (result["refused"], result["later"]) == ("typing_extensions", 2.0)


def test_own_helper_modules_import(tmp_path):
    result = load(tmp_path, {
        "solution.py": "from helpers import double\nimport mypkg.inner as inner\nVALUE = double(inner.BASE)\n",
        "helpers.py": "import math\ndef double(x):\n    return 2 * x\n",
        "mypkg/__init__.py": "",
        "mypkg/inner.py": "BASE = 21\n",
        "data.txt": "hello",
    }, probe="""
        import os
        result["value"] = ns["VALUE"]
        result["cwd_file"] = open("data.txt").read()
    """)
    assert (result["notes"], result["value"], result["cwd_file"]) == ([], 42, "hello")


def test_top_level_crash_falls_back_to_definitions(tmp_path):
    result = load(tmp_path, {"solution.py": """
        import sys
        def f():
            return 1
        data = open("mnist.npz").read()
        sys.exit(0)
    """})
    assert result["names"] == ["f", "sys"]
    assert result["notes"] == [
        "the top level raised FileNotFoundError: [Errno 2] No such file or directory: 'mnist.npz' at "
        "line 5; loaded again in definitions mode",
        "skipped `data = open(\"mnist.npz\").read()` (line 5): raised FileNotFoundError: [Errno 2] "
        "No such file or directory: 'mnist.npz'",
        "definitions mode dropped 1 expression (line 6)",
    ]


def test_slow_top_level_falls_back_within_the_import_budget(tmp_path):
    result = load(tmp_path, {"solution.py": """
        import time
        def f():
            return 1
        time.sleep(30)
    """}, import_budget_s=0.5)
    assert result["names"] == ["f", "time"]
    assert result["notes"] == ["the top level ran past 0.5 s; loaded again in definitions mode",
                               "definitions mode dropped 1 expression (line 5)"]
    assert result["load_s"] < 5


# --------------------------------------------------------------------------------------------
# Definitions mode
# --------------------------------------------------------------------------------------------

def test_definitions_mode_keeps_definitions_and_skips_slow_training(tmp_path):
    # ``import torch`` alone takes longer than the 0.5 s budget: library imports do not count
    result = load(tmp_path, {"solution.py": """
        import time
        import torch
        from torch import nn
        EPS = 1e-7
        bce = nn.BCEWithLogitsLoss()

        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.fc = nn.Linear(2, 1)

        model = Net()

        def train_model(epochs):
            while True:
                try:
                    time.sleep(0.01)
                except Exception:  # a student's catch-all must not eat the budget
                    pass

        trained = train_model(epochs=50)
        for epoch in range(10 ** 9):
            pass
        with torch.no_grad():
            model.fc.weight.zero_()
        print("plots")
        train_model(3)
        assert False
        if torch.cuda.is_available():
            DEVICE = "cuda"
        else:
            DEVICE = "cpu"
        try:
            import wandb
        except ImportError:
            wandb = None
        if __name__ == "__main__":
            train_model(100)
    """}, mode="definitions", budget_s=0.5, probe="""
        result["loss"] = round(float(ns["bce"](ns["torch"].zeros(1), ns["torch"].ones(1))), 4)
        result["model"] = type(ns["model"]).__name__
    """)
    assert result["names"] == ["DEVICE", "EPS", "Net", "bce", "model", "nn", "time", "torch",
                               "train_model", "wandb"]
    assert result["notes"] == [
        "skipped `trained = train_model(epochs=50)` (line 22): ran past the 0.5 s statement budget",
        "definitions mode dropped 1 loop (line 23); 1 with block (line 25); 2 expressions "
        "(line 27, line 28); 1 assert (line 29); 1 `if __name__ == \"__main__\"` block (line 38)",
    ]
    assert (result["loss"], result["model"]) == (0.6931, "Net")
    assert "plots" not in result["stdout"]
    assert result["load_s"] < 15


def test_notebook_positions_are_cells(tmp_path):
    cells = [
        {"cell_type": "markdown", "metadata": {}, "source": "# HW"},
        {"cell_type": "code", "metadata": {}, "source": "%matplotlib inline\nEPS = 1e-7"},
        {"cell_type": "code", "metadata": {}, "source": "def broken(x):\n    return x +\n"},
        {"cell_type": "code", "metadata": {}, "source": "def ok(x):\n    return x\nok(1)\nz = 1 / 0"},
    ]
    python, _, _ = convert_notebook(json.dumps({"nbformat": 4, "cells": cells}).encode())
    result = load(tmp_path, {NOTEBOOK_ENTRY: python}, entry=NOTEBOOK_ENTRY, mode="definitions")
    assert result["names"] == ["EPS", "ok"]
    assert result["notes"] == [
        "skipped cell 3: SyntaxError at line 11 (cell 3, line 2): invalid syntax",
        "skipped `z = 1 / 0` (cell 4, line 4): raised ZeroDivisionError: division by zero",
        "definitions mode dropped 1 expression (cell 4, line 3)",
    ]
    full = load(tmp_path / "full", {NOTEBOOK_ENTRY: python}, entry=NOTEBOOK_ENTRY, mode="full")
    assert full["error"] == "SyntaxError at line 11 (cell 3, line 2): invalid syntax\n    return x +"


def test_future_annotations_apply_to_later_statements(tmp_path):
    result = load(tmp_path, {"solution.py": """
        from __future__ import annotations
        def f(x: NotDefinedYet) -> AlsoNot:
            return x
    """}, mode="definitions", probe='result["ann"] = ns["f"].__annotations__')
    assert (result["notes"], result["ann"]) == ([], {"x": "NotDefinedYet", "return": "AlsoNot"})


# --------------------------------------------------------------------------------------------
# Headless plots and IPython
# --------------------------------------------------------------------------------------------

def test_matplotlib_is_headless(tmp_path):
    result = load(tmp_path, {"solution.py": """
        import matplotlib
        matplotlib.use("TkAgg")
        import matplotlib.pyplot as plt
        def plot():
            plt.plot([1, 2, 3])
            plt.show()
            plt.pause(5)
            return len(plt.get_fignums())
        plot()
    """}, probe="""
        import matplotlib
        result["backend"] = matplotlib.get_backend().lower()
        result["open_figures"] = ns["plot"]()
    """)
    assert (result["notes"], result["backend"], result["open_figures"]) == ([], "agg", 0)
    assert "non-interactive" not in result["stderr"] and "Warning" not in result["stderr"]
    assert result["load_s"] < 4


def test_ipython_display_works_without_ipython(tmp_path):
    result = load(tmp_path, {"solution.py": """
        from IPython.display import display, clear_output, HTML, Markdown, Image
        from IPython import get_ipython
        import IPython.display as ipd
        display(HTML("<b>hi</b>"), Markdown("*x*"))
        clear_output(wait=True)
        ipd.Javascript("alert(1)")
        SHELL = get_ipython()
        def show(x):
            display(x)           # the builtin, as in a notebook
            return 1
        from tqdm.notebook import tqdm
        STEPS = sum(1 for _ in tqdm(range(3)))
    """}, probe="""
        result["show"] = ns["show"](3)
        result["shell"] = repr(ns["SHELL"])
        result["steps"] = ns["STEPS"]
        get_ipython().run_line_magic("matplotlib", "inline")   # an nbconvert export's line
    """)
    assert result["notes"] == []
    assert (result["show"], result["shell"], result["steps"]) == (1, "None", 3)
