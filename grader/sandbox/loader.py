"""Load a student's submission as a module, inside the sandbox, in the student's own process.

This module runs in the sandboxed child, next to the student's code: it is plain Python with no
isolation logic (isolation is the sandbox's job) and imports nothing from ``reference`` or from the
grader outside ``grader/sandbox``. Importing it has no side effects; everything happens in
``load_module``:

1. the environment is made headless: ``MPLBACKEND=Agg`` (and ``matplotlib.use`` pinned to Agg,
   ``plt.show``/``plt.pause`` made silent no-ops once pyplot is imported), ``TQDM_DISABLE=1``,
   ``display``/``get_ipython`` as builtins and, when IPython is not installed, a stand-in
   ``IPython``/``IPython.display`` whose display functions do nothing;
2. imports are limited to ``ALLOWED_TOP_LEVEL_PACKAGES``, the standard library and the student's
   own modules in ``workdir``: importing anything else from student code raises
   ``ModuleNotFoundError`` naming the module and the list (a message for the student, not a
   security boundary: the sandbox is the boundary);
3. ``workdir`` goes first on ``sys.path`` and the entry file runs as the module ``submission``,
   registered in ``sys.modules`` so pickle, dataclasses and ``nn.Module`` subclasses work.

Modes:

- ``"full"`` runs the whole file (a ``.py`` submission). A syntax error raises
  ``SubmissionLoadError("SyntaxError at line 12: invalid syntax ...")``. If the top level raises,
  or runs past ``import_timeout_s``, the file is loaded again in definitions mode, with a note.
- ``"definitions"`` (notebooks; scripts whose top level trains a model) runs top-level statements
  one by one: imports, ``def``/``class``, assignments, ``if`` and ``try`` are kept, loops, ``with``
  blocks, bare expressions, ``assert``, ``del``, ``raise`` and ``if __name__ == "__main__"`` are
  dropped. Each kept statement runs under a wall-clock budget of ``statement_timeout_s`` and is
  skipped with a note if it raises or runs too long, so the functions still load. A notebook
  converted by ``grader.intake`` carries ``# %% cell N`` markers: each cell is parsed on its own
  (a cell with a syntax error is skipped, as Jupyter would run the others) and positions are
  reported as "cell N, line M".

Budgets use ``signal.setitimer(ITIMER_REAL)``, so ``load_module`` must run on the main thread
(elsewhere it loads without budgets). Time spent importing libraries (``import torch`` takes
seconds) does not count, and such an import is never interrupted half-way (that would break the
library for the rest of the process). A long call into C code (one huge matrix product) is only
interrupted when it returns to Python: the sandbox's own wall-time limit is the backstop.
"""
from __future__ import annotations

import ast
import builtins
import importlib.abc
import importlib.machinery
import importlib.util
import os
import re
import signal
import sys
import threading
import time
import traceback
import types

__all__ = [
    "ALLOWED_TOP_LEVEL_PACKAGES",
    "CELL_MARKER_RE",
    "StatementTimeout",
    "SubmissionLoadError",
    "describe_line",
    "load_module",
]

# The published list: third-party top-level packages a submission may import. The standard
# library (sys.stdlib_module_names) and the student's own modules in workdir come on top.
# mpl_toolkits ships inside the matplotlib distribution (``from mpl_toolkits.mplot3d import ...``).
ALLOWED_TOP_LEVEL_PACKAGES: tuple[str, ...] = (
    "IPython",
    "matplotlib",
    "mpl_toolkits",
    "numpy",
    "pandas",
    "scipy",
    "sklearn",
    "torch",
    "tqdm",
)

# The marker grader.intake writes before each notebook cell: "# %% cell 3" (cells counted from 1,
# markdown cells included, so N is the cell's position in the notebook).
CELL_MARKER_RE = re.compile(r"^# %% cell (\d+)$")

SUBMISSION_MODULE = "submission"
_REPEAT_ALARM_S = 0.05  # once a budget has run out, raise again every 50 ms until the code gives up
_MIN_ALARM_S = 0.001    # the shortest re-arm of a budget's timer
_SNIPPET_CHARS = 60
_MESSAGE_CHARS = 300
_POSITIONS_SHOWN = 5


class SubmissionLoadError(Exception):
    """The submission cannot be loaded at all (syntax error, missing or unreadable entry)."""


class UnavailableImport(ModuleNotFoundError):
    """The submission imports a package the grading environment does not offer."""


def _unavailable(exc: UnavailableImport, where: str) -> SubmissionLoadError:
    return SubmissionLoadError(f"unavailable import at {where}: {exc}")


class StatementTimeout(BaseException):
    """A top-level statement ran past its budget (BaseException: ``except Exception`` won't eat it)."""


# --------------------------------------------------------------------------------------------
# Positions: line numbers of a converted notebook back to cells
# --------------------------------------------------------------------------------------------

def _cell_starts(lines: list[str]) -> list[tuple[int, int]]:
    """``[(marker_line, cell_number), ...]`` for each ``# %% cell N`` marker (1-based lines)."""
    return [
        (index + 1, int(match.group(1)))
        for index, line in enumerate(lines)
        if (match := CELL_MARKER_RE.match(line.rstrip("\r\n")))
    ]


def _position(lineno: int | None, cells: list[tuple[int, int]]) -> str:
    if lineno is None:
        return "an unknown line"
    for marker_line, cell in reversed(cells):
        if marker_line < lineno:
            return f"cell {cell}, line {lineno - marker_line}"
    return f"line {lineno}"


def describe_line(source: str, lineno: int | None) -> str:
    """Where line ``lineno`` of ``source`` is, for a student: "line 12", or "cell 3, line 2"
    when ``source`` is a notebook converted by ``grader.intake``."""
    return _position(lineno, _cell_starts(source.splitlines()))


def _shorten(text: str, limit: int = _MESSAGE_CHARS) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _describe_exception(exc: BaseException) -> str:
    """``"ZeroDivisionError: division by zero"``, whatever the student's exception does."""
    try:
        name = str(type(exc).__name__)
    except BaseException:  # noqa: BLE001
        name = "Exception"
    try:
        message = _shorten(str(exc))
    except BaseException:  # noqa: BLE001 - a student's __str__ must not break the note
        message = "<unprintable message>"
    return f"{name}: {message}" if message else name


# --------------------------------------------------------------------------------------------
# Headless environment and stand-ins
# --------------------------------------------------------------------------------------------

class _Inert:
    """Accepts any arguments, does nothing: the stand-in for ``HTML(...)``, ``Image(...)`` and
    friends when IPython is not installed."""

    def __init__(self, *args, **kwargs):
        self.data = args[0] if args else kwargs.get("data")

    def __repr__(self) -> str:
        return f"<{type(self).__name__} (display is off while grading)>"

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        return _noop


def _noop(*args, **kwargs) -> None:
    return None


class _Anything:
    """Any attribute is itself, any call returns None: ``shell.events.register(...)``."""

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        return self

    def __call__(self, *args, **kwargs) -> None:
        return None


class _ShellStandIn(_Anything):
    """What the builtin ``get_ipython()`` returns while grading: magics and shell commands do
    nothing. Scripts exported by ``jupyter nbconvert`` call ``get_ipython().run_line_magic(...)``.
    (``IPython.get_ipython()`` itself returns None, as outside a shell, which libraries such as
    matplotlib and tqdm check for.) ``config`` is empty so that ``tqdm.auto`` picks its plain bar.
    """

    config: dict = {}

    def __repr__(self) -> str:
        return "<IPython shell stand-in (grading)>"


_SHELL = _ShellStandIn()


def _get_ipython() -> _ShellStandIn:
    return _SHELL


def _no_shell() -> None:
    return None


def _display_module_getattr(name: str):
    if name.startswith("__"):
        raise AttributeError(name)
    return type(name, (_Inert,), {}) if name[:1].isupper() else _noop


def _install_ipython_stand_in() -> None:
    """Put ``IPython``, ``IPython.display``, ``IPython.core`` and ``IPython.core.display`` in
    ``sys.modules`` with no-op ``display``, ``clear_output``, ``HTML``, ``Markdown``, ``Image``..."""
    display = types.ModuleType("IPython.display", "Stand-in for IPython.display: displays nothing.")
    display.display = _noop
    display.clear_output = _noop
    display.update_display = _noop
    display.set_matplotlib_formats = _noop
    for name in ("HTML", "Markdown", "Image", "Math", "Latex", "SVG", "JSON", "Javascript",
                 "Audio", "Video", "IFrame", "YouTubeVideo", "FileLink", "Pretty", "DisplayHandle"):
        setattr(display, name, type(name, (_Inert,), {}))
    display.__getattr__ = _display_module_getattr

    core = types.ModuleType("IPython.core", "Stand-in for IPython.core.")
    core.display = display
    core.__path__ = []
    package = types.ModuleType("IPython", "Stand-in for IPython (not installed in the grading environment).")
    package.__path__ = []
    package.display = display
    package.core = core
    package.get_ipython = _no_shell
    package.embed = _noop
    package.version_info = (0, 0, 0, "grading stand-in")
    for module in (package, core, display):
        module.__spec__ = importlib.machinery.ModuleSpec(module.__name__, None, is_package=True)
    sys.modules.update({
        "IPython": package,
        "IPython.display": display,
        "IPython.core": core,
        "IPython.core.display": display,
    })


def _make_plots_headless(module: types.ModuleType) -> None:
    """Patch matplotlib or matplotlib.pyplot right after it is imported."""
    if module.__name__ == "matplotlib":
        real_use = module.use

        def use(backend, *args, **kwargs):  # a student's matplotlib.use("TkAgg") keeps Agg
            return real_use("Agg", force=True)

        real_use("Agg", force=True)
        module.use = use
    elif module.__name__ == "matplotlib.pyplot":
        def show(*args, **kwargs) -> None:
            module.close("all")  # free the figures; nothing to show, and no warning about Agg

        module.show = show
        module.pause = _noop


_POST_IMPORT_PATCHES = {
    "matplotlib": _make_plots_headless,
    "matplotlib.pyplot": _make_plots_headless,
}


class _PatchingLoader(importlib.abc.Loader):
    """Wraps a module's real loader and patches the module once it has run."""

    def __init__(self, inner, patch):
        self._inner = inner
        self._patch = patch

    def create_module(self, spec):
        return self._inner.create_module(spec)

    def exec_module(self, module):
        self._inner.exec_module(module)
        self._patch(module)

    def __getattr__(self, name):  # get_data, is_package, get_resource_reader, ...
        return getattr(self._inner, name)


def _plain_tqdm_notebook(module: types.ModuleType) -> None:
    from tqdm import std  # noqa: PLC0415 (only when the student asks for tqdm.notebook)

    module.tqdm = module.tqdm_notebook = std.tqdm
    module.trange = module.tnrange = std.trange


class _StandInLoader(importlib.abc.Loader):
    def __init__(self, fill):
        self._fill = fill

    def create_module(self, spec):
        return None

    def exec_module(self, module):
        self._fill(module)


# --------------------------------------------------------------------------------------------
# The import allowlist
# --------------------------------------------------------------------------------------------

# Frames skipped when looking for who asked for an import: importlib itself and this file (the
# wrapped builtins.__import__ runs here).
_IMPORT_MACHINERY = ("<frozen importlib", os.path.dirname(importlib.__file__) + os.sep, __file__)


class _ImportGate(importlib.abc.MetaPathFinder):
    """Refuses top-level imports outside the allowlist when student code asks for them.

    An import counts as the student's when the nearest frame outside the import machinery is the
    student's: a file in ``workdir``, the ``submission`` module, or code made by ``exec``/``eval``
    without a package's globals. Allowed packages keep importing their own dependencies (torch
    imports sympy, matplotlib imports PIL) freely. The same decision wraps ``builtins.__import__``
    so that a module already loaded by an allowed package (sympy, after ``import torch``) is
    refused to the student all the same, whatever the import order.
    """

    def __init__(self, workdir: str):
        self.workdir = os.path.realpath(workdir) + os.sep
        self.prefixes = (os.path.abspath(workdir) + os.sep, self.workdir)
        self.allowed = (frozenset(ALLOWED_TOP_LEVEL_PACKAGES) | frozenset(sys.stdlib_module_names)
                        | {SUBMISSION_MODULE})
        self.own = frozenset(self._own_modules(workdir))
        self.available = (", ".join(sorted(ALLOWED_TOP_LEVEL_PACKAGES, key=str.lower))
                          + ", the standard library and your own modules")
        try:
            self.has_ipywidgets = importlib.util.find_spec("ipywidgets") is not None
        except (ImportError, ValueError):
            self.has_ipywidgets = False

    @staticmethod
    def _own_modules(workdir: str) -> set[str]:
        names = set()
        with os.scandir(workdir) as entries:
            for entry in entries:
                if entry.is_file(follow_symlinks=False) and entry.name.endswith(".py"):
                    names.add(entry.name[:-3])
                elif entry.is_dir(follow_symlinks=False):
                    names.add(entry.name)
        return names

    # -- the decision --------------------------------------------------------------------

    def _is_students(self, frame) -> bool:
        while frame is not None and frame.f_code.co_filename.startswith(_IMPORT_MACHINERY):
            frame = frame.f_back
        if frame is None:
            return False
        filename = frame.f_code.co_filename
        if filename.startswith(self.prefixes):
            return True
        name = frame.f_globals.get("__name__")
        if not isinstance(name, str):
            return filename.startswith("<")
        top = name.partition(".")[0]
        if name == SUBMISSION_MODULE or top in self.own:
            return True
        return filename.startswith("<") and top not in self.allowed

    def _refused(self, top: str) -> bool:
        if top in self.allowed or top in self.own:
            return False
        try:  # a module the student wrote after loading started
            return importlib.machinery.PathFinder.find_spec(top, [self.workdir]) is None
        except (ImportError, ValueError):
            return True

    def _error(self, top: str) -> ModuleNotFoundError:
        return UnavailableImport(
            f"No module named '{top}' (not available in the grading environment; "
            f"available: {self.available})",
            name=top,
        )

    # -- the meta path finder ------------------------------------------------------------

    def find_spec(self, fullname, path=None, target=None):
        top = fullname.partition(".")[0]
        if "." not in fullname and self._refused(top) and self._is_students(sys._getframe(1)):
            raise self._error(top)
        if fullname == "tqdm.notebook" and not self.has_ipywidgets:
            # tqdm.notebook needs ipywidgets; without it, the plain bar (nothing is shown anyway)
            return importlib.machinery.ModuleSpec(fullname, _StandInLoader(_plain_tqdm_notebook))
        patch = _POST_IMPORT_PATCHES.get(fullname)
        if patch is None:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                if spec.loader is not None:
                    spec.loader = _PatchingLoader(spec.loader, patch)
                return spec
        return None

    # -- the builtins.__import__ wrapper -------------------------------------------------

    def wrap_import(self, real_import):
        def gated_import(name, globals=None, locals=None, fromlist=(), level=0):
            if level != 0 or not name:
                return real_import(name, globals, locals, fromlist, level)
            top = name.partition(".")[0]
            if top in sys.modules and self._refused(top) and self._is_students(sys._getframe(1)):
                raise self._error(top)
            if top in self.own:
                return real_import(name, globals, locals, fromlist, level)
            _LibraryImport.enter()  # a budget running out now waits for the import's end
            try:
                return real_import(name, globals, locals, fromlist, level)
            finally:
                _LibraryImport.leave()

        gated_import._real_import = real_import
        return gated_import


def _prepare_environment(workdir: str, entry_path: str, chdir: bool) -> _ImportGate:
    os.environ["MPLBACKEND"] = "Agg"
    os.environ["TQDM_DISABLE"] = "1"
    if "matplotlib" in sys.modules:  # imported before us: pin the backend now
        _make_plots_headless(sys.modules["matplotlib"])
    if "matplotlib.pyplot" in sys.modules:
        _make_plots_headless(sys.modules["matplotlib.pyplot"])
    try:
        has_ipython = "IPython" in sys.modules or importlib.util.find_spec("IPython") is not None
    except (ImportError, ValueError):
        has_ipython = False
    if not has_ipython:
        _install_ipython_stand_in()
    if not hasattr(builtins, "display"):  # notebooks call display() without importing it
        builtins.display = _noop
    if not hasattr(builtins, "get_ipython"):  # scripts exported by nbconvert call get_ipython()
        builtins.get_ipython = _get_ipython

    # a second load in the same process replaces the gate instead of stacking another one
    sys.meta_path[:] = [finder for finder in sys.meta_path if not isinstance(finder, _ImportGate)]
    real_import = getattr(builtins.__import__, "_real_import", builtins.__import__)
    gate = _ImportGate(workdir)
    sys.meta_path.insert(0, gate)
    builtins.__import__ = gate.wrap_import(real_import)
    sys.path.insert(0, workdir)
    sys.argv = [entry_path]
    if chdir:
        os.chdir(workdir)
    return gate


# --------------------------------------------------------------------------------------------
# Running code under a budget
# --------------------------------------------------------------------------------------------

class _LibraryImport:
    """Imports of libraries (anything but the student's own modules) under way, and their time.

    Interrupting ``import torch`` half-way leaves torch broken for good in this process (its C
    types are registered once), and a slow first import is not the student's doing. So a budget
    that runs out during a library import waits for the import's end, and the time spent in
    library imports is given back to the budget: it counts the student's own code only.
    """

    depth = 0
    seconds = 0.0  # spent in (outermost) library imports since the process started
    started = 0.0
    waiting: _Budget | None = None  # ran out during an import; resumes when the import ends

    @classmethod
    def enter(cls) -> None:
        if cls.depth == 0:
            cls.started = time.monotonic()
        cls.depth += 1

    @classmethod
    def leave(cls) -> None:
        cls.depth -= 1
        if cls.depth == 0:
            cls.seconds += time.monotonic() - cls.started
            budget, cls.waiting = cls.waiting, None
            if budget is not None:
                budget.resume()


class _Budget:
    """``with _Budget(seconds):`` raises StatementTimeout in the block once it has run for
    ``seconds``, not counting library imports (see _LibraryImport); it raises again every
    ``_REPEAT_ALARM_S`` until the block gives up (a student's ``except BaseException`` in a loop)."""

    def __init__(self, seconds: float | None):
        # no setitimer (Windows): no budget; the caller's own wall time is the only bound
        self.seconds = seconds if seconds and seconds > 0 and hasattr(signal, "setitimer") else None
        self.armed = False
        self.credited = 0.0
        self.previous = signal.SIG_DFL

    def _alarm(self, signum, frame):
        if not self.armed:
            return
        if _LibraryImport.depth:
            _LibraryImport.waiting = self
            return
        if not self._extend():
            signal.setitimer(signal.ITIMER_REAL, _REPEAT_ALARM_S)
            raise StatementTimeout()

    def _extend(self) -> bool:
        """Re-arm for the library-import time not yet given back; False if there is none."""
        extra = _LibraryImport.seconds - self.credited
        self.credited = _LibraryImport.seconds
        if extra <= 0:
            return False
        # never below a millisecond: setitimer rounds to microseconds, and 0 disarms the timer
        # (a library import of under 1 us, ``import time``, then left the budget unbounded)
        signal.setitimer(signal.ITIMER_REAL, max(extra, _MIN_ALARM_S))
        return True

    def resume(self) -> None:
        if self.armed and not self._extend():
            signal.setitimer(signal.ITIMER_REAL, _REPEAT_ALARM_S)

    def __enter__(self):
        if self.seconds is not None:
            previous = signal.signal(signal.SIGALRM, self._alarm)
            self.previous = signal.SIG_DFL if previous is None else previous
            self.credited = _LibraryImport.seconds
            self.armed = True
            signal.setitimer(signal.ITIMER_REAL, self.seconds)
        return self

    def __exit__(self, *exc):
        if self.seconds is not None:
            signal.setitimer(signal.ITIMER_REAL, 0)
            self.armed = False
            if _LibraryImport.waiting is self:
                _LibraryImport.waiting = None
            signal.signal(signal.SIGALRM, self.previous)
        return False


def _compile(tree_or_source, filename: str, flags: int = 0):
    return compile(tree_or_source, filename, "exec", flags=flags, dont_inherit=True)


def _syntax_error(exc: SyntaxError, cells: list[tuple[int, int]]) -> str:
    where = f"line {exc.lineno}" if exc.lineno else "an unknown line"
    position = _position(exc.lineno, cells)
    if position != where:
        where = f"{where} ({position})"
    message = f"{type(exc).__name__} at {where}: {exc.msg}"
    if exc.text and exc.text.strip():
        message += f"\n    {exc.text.strip()}"
    return message


def _failure_line(exc: BaseException, filename: str) -> int | None:
    lines = [frame.lineno for frame in traceback.extract_tb(exc.__traceback__)
             if frame.filename == filename]
    return lines[-1] if lines else None


# --------------------------------------------------------------------------------------------
# Definitions mode
# --------------------------------------------------------------------------------------------

def _is_main_guard(node: ast.If) -> bool:
    test = node.test
    if not isinstance(test, ast.Compare) or len(test.comparators) != 1:
        return False
    sides = (test.left, test.comparators[0])
    has_name = any(isinstance(side, ast.Name) and side.id == "__name__" for side in sides)
    has_main = any(isinstance(side, ast.Constant) and side.value == "__main__" for side in sides)
    return has_name and has_main


_KEPT = (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef,
         ast.Assign, ast.AnnAssign, ast.AugAssign, ast.If, ast.Try, ast.TryStar, ast.Global,
         ast.Nonlocal)

_DROPPED = (  # (statement types, the word used in notes)
    ((ast.For, ast.AsyncFor, ast.While), "loop"),
    ((ast.With, ast.AsyncWith), "with block"),
    ((ast.Expr,), "expression"),
    ((ast.Assert,), "assert"),
    ((ast.Delete,), "del"),
    ((ast.Raise,), "raise"),
    ((ast.Match,), "match block"),
)


def _dropped_kind(node: ast.stmt) -> str | None:
    """The note word for a statement definitions mode drops, None for one it runs."""
    if isinstance(node, ast.If) and _is_main_guard(node):
        return "`if __name__ == \"__main__\"` block"
    if isinstance(node, _KEPT):
        return None
    if isinstance(node, ast.Pass):
        return ""  # dropped without a word
    for types_, word in _DROPPED:
        if isinstance(node, types_):
            return word
    return "statement"


def _split_cells(source: str) -> list[tuple[int, str]]:
    """``[(cell_number_or_0, padded_text)]``: the source cut at the cell markers, each piece
    padded with blank lines so that line numbers stay those of the whole file."""
    lines = source.splitlines(keepends=True)
    cells = _cell_starts(lines)
    if not cells:
        return [(0, source)]
    pieces = []
    bounds = [(0, 0)] + cells + [(len(lines) + 1, -1)]
    for (start, cell), (end, _) in zip(bounds, bounds[1:]):
        # lines[start:end-1] are the piece (marker lines are 1-based, start is the marker's)
        text = "".join(lines[start:end - 1])
        if text.strip():
            pieces.append((cell, "\n" * start + text))
    return pieces


def _plural(count: int, word: str) -> str:
    return f"1 {word}" if count == 1 else f"{count} {word}s"


def _run_definitions(namespace: dict, source: str, filename: str,
                     statement_timeout_s: float | None, notes: list[str]) -> None:
    cells = _cell_starts(source.splitlines())
    pieces = _split_cells(source)
    dropped: dict[str, list[str]] = {}
    future_flags = 0
    on_main_thread = threading.current_thread() is threading.main_thread()
    if statement_timeout_s and not on_main_thread:
        notes.append("statement budget not enforced: the loader is not on the main thread")
    budget_s = statement_timeout_s if on_main_thread else None

    for cell, text in pieces:
        try:
            tree = ast.parse(text, filename=filename)
        except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:
            if isinstance(exc, SyntaxError):
                message = _syntax_error(exc, cells)
            else:
                message = f"cannot be parsed: {_describe_exception(exc)}"
            if not cell:
                raise SubmissionLoadError(message) from None
            notes.append(f"skipped cell {cell}: {message.splitlines()[0]}")
            continue
        for node in tree.body:
            kind = _dropped_kind(node)
            if kind is not None:
                if kind:
                    dropped.setdefault(kind, []).append(_position(node.lineno, cells))
                continue
            if isinstance(node, ast.ImportFrom) and node.module == "__future__":
                import __future__  # noqa: PLC0415

                for alias in node.names:
                    feature = getattr(__future__, alias.name, None)
                    future_flags |= getattr(feature, "compiler_flag", 0)
            try:
                code = _compile(ast.Module(body=[node], type_ignores=[]), filename, future_flags)
                with _Budget(budget_s):
                    exec(code, namespace)
            except StatementTimeout:
                notes.append(f"skipped {_snippet(source, node)} ({_position(node.lineno, cells)}): "
                             f"ran past the {statement_timeout_s:g} s statement budget")
            except UnavailableImport as exc:
                raise _unavailable(exc, _position(node.lineno, cells)) from None
            except (Exception, SystemExit) as exc:
                notes.append(f"skipped {_snippet(source, node)} ({_position(node.lineno, cells)}): "
                             f"raised {_describe_exception(exc)}")

    if dropped:
        parts = []
        for kind, positions in dropped.items():
            shown = ", ".join(positions[:_POSITIONS_SHOWN])
            if len(positions) > _POSITIONS_SHOWN:
                shown += f" and {len(positions) - _POSITIONS_SHOWN} more"
            parts.append(f"{_plural(len(positions), kind)} ({shown})")
        notes.append("definitions mode dropped " + "; ".join(parts))


def _snippet(source: str, node: ast.stmt) -> str:
    """The statement's first line in backquotes, cut to a readable length."""
    try:
        segment = (ast.get_source_segment(source, node) or "").strip()
    except Exception:
        segment = ""
    lines = segment.splitlines() or [type(node).__name__]
    first = lines[0]
    if len(first) > _SNIPPET_CHARS:
        first = first[: _SNIPPET_CHARS - 3].rstrip() + "..."
    elif len(lines) > 1:
        first += " ..."
    return f"`{first}`"


# --------------------------------------------------------------------------------------------
# The entry point
# --------------------------------------------------------------------------------------------

def _fresh_module(filename: str) -> types.ModuleType:
    module = types.ModuleType(SUBMISSION_MODULE)
    module.__file__ = filename
    module.__builtins__ = builtins
    module.__spec__ = importlib.util.spec_from_file_location(SUBMISSION_MODULE, filename)
    module.__loader__ = module.__spec__.loader if module.__spec__ else None
    sys.modules[SUBMISSION_MODULE] = module
    return module


class LoadNotes(list):
    """The notes of a load (a list of str); ``fallback`` is ``(status, message)`` when a full
    load fell back to the definitions because the top level ran out of time (``"timeout"``)
    or memory (``"crashed"``), else None."""

    fallback: tuple[str, str] | None = None


def load_module(workdir: str, entry: str, mode: str, statement_timeout_s: float | None,
                *, import_timeout_s: float | None = None,
                chdir: bool = True) -> tuple[dict, LoadNotes]:
    """Run ``workdir/entry`` as the module ``submission`` and return ``(namespace, notes)``.

    ``mode`` is ``"full"`` (run the whole file) or ``"definitions"`` (keep definitions, see the
    module docstring). ``statement_timeout_s`` is the budget of each statement in definitions
    mode (None or 0: no budget); ``import_timeout_s`` bounds the whole top level in full mode
    (None: no bound; past it the file is loaded again in definitions mode). ``chdir`` makes
    ``workdir`` the current directory, so the student's relative paths work.

    Raises ``SubmissionLoadError`` when nothing can be loaded: unknown mode, missing or unreadable
    entry, or a syntax error (outside a notebook cell). Everything else becomes a note.
    """
    if mode not in ("full", "definitions"):
        raise SubmissionLoadError(f"unknown load mode {mode!r}: expected 'full' or 'definitions'")
    workdir = os.path.abspath(workdir)
    filename = os.path.join(workdir, entry)
    try:
        with open(filename, encoding="utf-8-sig") as handle:
            source = handle.read()
    except FileNotFoundError:
        raise SubmissionLoadError(f"the entry file {entry} is missing from the prepared copy") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SubmissionLoadError(f"cannot read {entry}: {_describe_exception(exc)}") from None
    if "\0" in source:
        line = source.count("\n", 0, source.index("\0")) + 1
        raise SubmissionLoadError(f"{entry} contains a NUL character at line {line}: "
                                  f"it is not a text file (saved as UTF-16?)")

    _prepare_environment(workdir, filename, chdir)
    notes = LoadNotes()
    module = _fresh_module(filename)

    if mode == "full":
        cells = _cell_starts(source.splitlines())
        try:
            code = _compile(source, filename)
        except SyntaxError as exc:
            raise SubmissionLoadError(_syntax_error(exc, cells)) from None
        except (ValueError, RecursionError, MemoryError) as exc:
            raise SubmissionLoadError(f"{entry} cannot be compiled: {_describe_exception(exc)}") from None
        on_main_thread = threading.current_thread() is threading.main_thread()
        try:
            with _Budget(import_timeout_s if on_main_thread else None):
                exec(code, module.__dict__)
            return module.__dict__, notes
        except StatementTimeout:
            notes.append(f"the top level ran past {import_timeout_s:g} s; "
                         "loaded again in definitions mode")
            notes.fallback = ("timeout", f"the top level ran past {import_timeout_s:g} s")
        except UnavailableImport as exc:
            raise _unavailable(exc, _position(_failure_line(exc, filename), cells)) from None
        except (Exception, SystemExit) as exc:
            where = _position(_failure_line(exc, filename), cells)
            notes.append(f"the top level raised {_describe_exception(exc)} at {where}; "
                         "loaded again in definitions mode")
            if isinstance(exc, MemoryError):
                notes.fallback = ("crashed", f"the top level ran out of memory (MemoryError at {where})")
        module = _fresh_module(filename)

    _run_definitions(module.__dict__, source, filename, statement_timeout_s, notes)
    return module.__dict__, notes
