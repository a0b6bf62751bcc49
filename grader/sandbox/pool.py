"""``SandboxPool``: the grader's handle on the sandboxes.

The pool starts ``workers`` zygotes (``grader.sandbox.zygote``) as separate interpreters and
talks to each over two pipes. ``run`` is thread-safe: each call takes a free zygote, sends the
request, reads the supervisor's frames (each capped and validated; bad data from the sandbox is
a "crashed" call, never an exception here) until the zygote's "done", and puts the zygote back.
The grader process itself never forks a sandbox.

Every run is bound to a fresh random ``session`` token (never derived from the submission) that
each frame of the run must carry. A zygote whose stream is in any unexpected state (any
exception while reading it, a frame of another session or out of order, data left after
``done``) or that overruns the run's outer deadline is killed (its sandbox dies with it) and
restarted, never reused: nothing one submission sends can reach another's result.
"""
from __future__ import annotations

import math
import os
import queue
import secrets
import select
import subprocess
import sys
import threading
import time
import warnings
import weakref
from pathlib import Path

from grader.escape import clean_text
from grader.sandbox import protocol, schema
from grader.sandbox.job import PROJECT_ROOT
from grader.sandbox.limits import Limits
from grader.sandbox.namespaces import isolation_available
from grader.sandbox.results import (RUN_STATUSES, UNSANDBOXED_WARNING, CallResult,  # noqa: F401 - re-exported
                                    SandboxResult, load_fallback, suspected_tampering)

START_S = 120.0  # a zygote importing torch on a busy machine
OUTER_SLACK_S = 30.0  # the grader's own deadline, on top of the supervisor's
MESSAGE_CHARS = 4000  # a status message or call error from the sandbox, at most
NOTE_CHARS, MAX_NOTES = 1000, 60  # each note from the sandbox, and how many are kept
OUTPUT_CHARS = 1 << 20  # stdout or stderr text (the supervisor already caps it at output_kib)


class StreamError(RuntimeError):
    """The zygote's stream is not in the state the protocol allows: the zygote is replaced."""


class _Zygote:
    """One zygote process and its two pipes."""

    def __init__(self, isolation: str, workhouse: bool = True, preload: bool = True) -> None:
        self.isolation, self.workhouse, self.preload = isolation, workhouse, preload
        self.process: subprocess.Popen | None = None
        self.notes: list[str] = []

    def start(self) -> None:
        ctrl_r, self.ctrl_w = os.pipe()
        self.result_r, result_w = os.pipe()
        env = {
            "PATH": "/usr/local/bin:/usr/bin:/bin", "PYTHONPATH": PROJECT_ROOT, "LANG": "C.UTF-8",
            "HOME": "/tmp", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
            "OPENBLAS_NUM_THREADS": "1", "PYTHONHASHSEED": "0", "PYTHONDONTWRITEBYTECODE": "1",
            # malloc's heaps in transparent huge pages: a fork copies far fewer page-table
            # entries (each sandbox forks S, P1 and one call process per function from this
            # interpreter; benchmarks/SANDBOX_PROFILE.md). A tunable, read once at exec.
            "GLIBC_TUNABLES": "glibc.malloc.hugetlb=1",
        }
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "grader.sandbox.zygote", "--ctrl-fd", str(ctrl_r),
                 "--result-fd", str(result_w), "--isolation", self.isolation,
                 *([] if self.workhouse else ["--no-workhouse"]), *([] if self.preload else ["--no-preload"])],
                pass_fds=(ctrl_r, result_w), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                env=env, cwd=PROJECT_ROOT, start_new_session=True,
            )
        finally:
            os.close(ctrl_r)
            os.close(result_w)
        self.reader = protocol.FrameReader(1 << 20)
        self.ready = False

    def wait_ready(self) -> None:
        if self.ready:
            return
        message = protocol.read_message(self.result_r, self.reader, time.monotonic() + START_S)
        if message is None or message.get("type") != "ready":
            raise RuntimeError(f"the sandbox zygote did not start (it said {message!r})")
        self.notes = [str(note) for note in message.get("notes", [])]
        self.ready = True

    def has_stray_data(self) -> bool:
        """Bytes between two runs, where a zygote sends none: it cannot be trusted any more."""
        if not self.ready:
            return False
        if self.reader.queue or self.reader.pending:
            return True
        return bool(select.select([self.result_r], [], [], 0)[0])

    def stop(self, wait_s: float = 5.0) -> None:
        for fd in ("ctrl_w", "result_r"):
            if getattr(self, fd, None) is not None:
                try:
                    os.close(getattr(self, fd))
                except OSError:
                    pass
                setattr(self, fd, None)
        if self.process is not None:
            try:
                self.process.wait(wait_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            self.process = None

    def restart(self) -> None:
        self.stop(wait_s=3.0)  # time for the zygote to abandon its run cleanly
        self.start()


class SandboxPool:
    """Runs submissions in sandboxes; see the package docstring for the guarantees."""

    def __init__(self, limits: Limits = Limits(), workers: int = 1, isolation: str = "auto",
                 workhouse: bool = True, preload: bool = True, lazy: bool = False) -> None:
        """``workhouse``: the zygotes preload train_gan's call module (False: a pool that never
        runs train_gan starts about 0.8 s sooner). ``preload``: they preload the optional
        packages (``grader.sandbox.job.PRELOADED``: scipy, matplotlib, pandas, sklearn, ...), which
        saves each submission that imports them their import; False for a pool that grades one
        submission (the self-check), which then imports only what it uses. ``lazy``: each zygote
        starts at its first run instead of now (a resumed class with nothing left to grade starts
        none); the isolation asked for is checked now either way."""
        if isolation not in ("auto", "namespaces", "none"):
            raise ValueError(f"isolation must be 'auto', 'namespaces' or 'none', got {isolation!r}")
        if workers < 1:
            raise ValueError(f"workers must be at least 1, got {workers}")
        self.limits = limits
        if isolation == "auto":
            available, reason = isolation_available()
            isolation = "namespaces" if available else "none"
            if not available:
                warnings.warn(f"{UNSANDBOXED_WARNING} ({reason})", RuntimeWarning, stacklevel=2)
                print(f"WARNING: {UNSANDBOXED_WARNING} ({reason})", file=sys.stderr)
        elif isolation == "namespaces":
            available, reason = isolation_available()
            if not available:
                raise RuntimeError(f"isolation='namespaces' was asked for, but {reason}")
        self.isolation = isolation
        self._zygotes = [_Zygote(isolation, workhouse, preload) for _ in range(workers)]
        self._free: queue.Queue[_Zygote] = queue.Queue()
        self._closed = False
        self._lock = threading.Lock()
        for zygote in self._zygotes:
            if not lazy:  # else _run_on starts it, as it restarts a dead one
                zygote.start()
            self._free.put(zygote)
        self._finalizer = weakref.finalize(self, _stop_all, list(self._zygotes))

    # ------------------------------------------------------------------------------------ API
    def run(self, workdir: Path | str, entry: str, mode: str, groups: list[list[dict]]) -> SandboxResult:
        """Load ``workdir/entry`` in a fresh sandbox and run ``groups`` of calls; blocks."""
        workdir, entry = _check_request(workdir, entry, mode, groups)
        if self._closed:
            raise RuntimeError("this SandboxPool is closed")
        started = time.monotonic()
        zygote = self._free.get()
        try:
            result = with_definitions_fallback(lambda m: self._run_on(zygote, workdir, entry, m, groups), mode)
        finally:
            self._free.put(zygote)
        result.duration_s = time.monotonic() - started
        return result

    def close(self) -> None:
        """Stop every zygote (a sandbox still running dies with its zygote)."""
        self._closed = True
        self._finalizer()

    def __enter__(self) -> SandboxPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ----------------------------------------------------------------------------- one run
    def _run_on(self, zygote: _Zygote, workdir: str, entry: str, mode: str,
                groups: list[list[dict]]) -> SandboxResult:
        ids = [call["id"] for group in groups for call in group]
        result = SandboxResult(status="sandbox_error", message="", isolation=self.isolation)
        try:
            if zygote.process is None or zygote.process.poll() is not None or zygote.has_stray_data():
                zygote.restart()
            zygote.wait_ready()
            session = secrets.token_hex(16)
            request = {"type": "run", "session": session, "workdir": workdir, "entry": entry, "mode": mode,
                       "groups": groups, "limits": self.limits.to_dict()}
            protocol.write_all(zygote.ctrl_w, protocol.frame(protocol.dumps(request)))
            self._collect(zygote, result, ids, groups, session)
        except Exception as error:  # noqa: BLE001 - whatever it was, this zygote is never reused
            result = SandboxResult(status="sandbox_error", isolation=self.isolation,
                                   message=clean_text(f"{type(error).__name__}: {error}", MESSAGE_CHARS))
            zygote.restart()
        result.notes[:0] = zygote.notes
        if self.isolation == "none":
            result.notes.insert(0, UNSANDBOXED_WARNING)
        for call_id in ids:  # whatever did not come back was not run
            if call_id not in result.calls:
                result.calls[call_id] = CallResult(call_id, "not_run", None,
                                                   f"not run: {result.message or 'the sandbox stopped'}", 0.0)
        return result

    def _outer_deadline(self, groups: list[list[dict]]) -> float:
        # imported here, not at the top: they bind Linux-only calls (fork, pidfd_open, poll) at
        # import, and this module must import anywhere (``grader.run`` imports it on macOS too)
        from grader.sandbox import inside, supervisor

        limits = self.limits
        calls = [call for group in groups for call in group]
        budget = (supervisor.SETUP_S + 2 * limits.import_wall_s + 1
                  + sum(float(call.get("wall_s", limits.call_wall_s)) + supervisor.GRACE_S + inside.IDLE_S
                        for call in calls))
        return time.monotonic() + budget + OUTER_SLACK_S

    def _collect(self, zygote: _Zygote, result: SandboxResult, ids: list[str],
                 groups: list[list[dict]], session: str) -> None:
        """Read this run's frames up to the zygote's ``done``; raises ``StreamError`` (or any
        other exception) when the stream is not exactly what the protocol allows."""
        deadline = self._outer_deadline(groups)
        limits = self.limits
        reader = zygote.reader
        reader.max_bytes = (limits.result_mib << 20) + 12 * (limits.output_kib << 10) + (1 << 20)
        expected = set(ids)
        kinds = {call["id"]: call.get("kind") for group in groups for call in group}
        end_seen = False
        while True:
            try:
                message = protocol.read_message(zygote.result_r, reader, deadline, raw=True)
            except TimeoutError:
                raise TimeoutError(
                    "the sandbox ran past the grader's outer deadline; its zygote was restarted"
                ) from None
            if message is None:
                raise StreamError("the sandbox zygote died during the run; it was restarted")
            kind = message.get("type")
            if message.get("s") != session:
                raise StreamError(f"a {clean_text(kind, 40)!r} frame of another run on the sandbox's stream")
            if kind == "call" and not end_seen:
                call_id = message.get("id")
                if call_id not in expected or call_id in result.calls:
                    raise StreamError(f"an unexpected outcome for call {clean_text(call_id, 80)!r}")
                result.calls[call_id] = _call_result(message, kinds[call_id])
            elif kind == "end" and not end_seen:
                end_seen = True
                status = message.get("status")
                if status not in RUN_STATUSES:
                    raise StreamError(f"an end frame with the unknown status {clean_text(status, 40)!r}")
                result.status = status
                result.message = clean_text(message.get("message", ""), MESSAGE_CHARS)
                result.notes.extend(_notes(message.get("notes")))
                result.load_fallback = load_fallback(message.get("load_fallback"))
                result.suspected_tampering = [clean_text(item) for item in suspected_tampering(message.get("tampering"))]
                result.stdout = clean_text(message.get("stdout", ""), OUTPUT_CHARS)
                result.stderr = clean_text(message.get("stderr", ""), OUTPUT_CHARS)
                dropped = message.get("output_dropped_bytes", 0)
                result.output_dropped_bytes = dropped if type(dropped) is int and dropped >= 0 else 0
            elif kind == "done":
                if not end_seen:  # a frame out of order, like any other: this zygote is not reused
                    raise StreamError(f"the supervisor ended without a report (wait status "
                                      f"{clean_text(message.get('exit'), 40)}); the zygote was restarted")
                if reader.queue or reader.pending:
                    raise StreamError("data after the end of the run on the sandbox's stream")
                _annotate(result, message, limits)
                return
            else:
                raise StreamError(f"an unexpected {clean_text(kind, 40)!r} frame on the sandbox's stream")


def _notes(notes: object) -> list[str]:
    return [clean_text(note, NOTE_CHARS) for note in notes[:MAX_NOTES]] if isinstance(notes, list) else []


def with_definitions_fallback(run_once, mode: str) -> SandboxResult:
    """``run_once(mode)``; when a "full" load times out (a top level that never ends), the run
    again on the module's definitions alone, with the first run's output and a note kept."""
    result = run_once(mode)
    if mode == "full" and result.status == "timeout":
        first = result
        result = run_once("definitions")
        result.notes[:0] = [f"{first.message}; graded on its definitions alone"]
        if result.status == "ok":
            result.load_fallback = ("timeout", first.message)
        result.stdout, result.stderr = first.stdout + result.stdout, first.stderr + result.stderr
        result.output_dropped_bytes += first.output_dropped_bytes
    return result


def _call_result(message: dict, kind: str | None = None) -> CallResult:
    """One call's outcome as the supervisor reported it; malformed data from the student's
    process (anything that does not decode to an object of values of the shape ``schema``
    gives for the call's ``kind``) fails that call only."""
    call_id = str(message.get("id"))
    status = message.get("status")
    duration = message.get("duration_s")
    duration = float(duration) if type(duration) is float and math.isfinite(duration) else 0.0
    if status not in ("ok", "error", "timeout", "crashed", "not_run"):
        return CallResult(call_id, "crashed", None, f"malformed outcome {clean_text(status, 40)!r} from the sandbox",
                          duration)
    if status != "ok":
        return CallResult(call_id, status, None, clean_text(message.get("error", ""), MESSAGE_CHARS), duration)
    try:
        value = protocol.from_jsonable(message.get("value"))
    except Exception as error:  # noqa: BLE001 - ProtocolError, or anything numpy makes of hostile data
        return CallResult(call_id, "crashed", None,
                          f"malformed data from the sandbox: {clean_text(error, 300)}", duration)
    if not isinstance(value, dict):
        return CallResult(call_id, "crashed", None,
                          f"the call returned a {type(value).__name__}, not an object of values", duration)
    malformed = schema.problem(kind, value) if kind else None
    if malformed:
        return CallResult(call_id, "crashed", None, f"malformed data from the sandbox: {malformed}", duration)
    return CallResult(call_id, "ok", _capped(value), "", duration)


def _capped(value: object) -> object:
    """``value`` with every string (an exception's message, a type name) at most ``MESSAGE_CHARS``."""
    if isinstance(value, str):
        return clean_text(value, MESSAGE_CHARS) if len(value) > MESSAGE_CHARS else value
    if isinstance(value, list):
        return [_capped(item) for item in value]
    if isinstance(value, dict):
        return {clean_text(key, 200): _capped(item) for key, item in value.items()}
    return value


def _annotate(result: SandboxResult, done: dict, limits: Limits) -> None:
    """Say when the memory cgroup killed something, and when processes outlived the run."""
    oom_kills = done.get("oom_kills") if type(done.get("oom_kills")) is int else 0
    if oom_kills:
        why = (f"the submission hit its memory limit (Limits.total_memory_mib = "
               f"{limits.total_memory_mib} MiB): the kernel killed {oom_kills} process(es)")
        result.notes.append(why)
        for call in result.calls.values():
            if call.status == "crashed" and "SIGKILL" in call.error:
                call.error += f" ({why})"
        if result.status == "crashed" and "SIGKILL" in result.message:
            result.message += f" ({why})"
    leftover = done.get("leftover_processes") if type(done.get("leftover_processes")) is int else 0
    if leftover:
        result.notes.append(f"{leftover} process(es) outlived the sandbox and could not be killed")


def _check_request(workdir: Path | str, entry: str, mode: str, groups: list[list[dict]]) -> tuple[str, str]:
    folder = Path(workdir)
    if not folder.is_dir():
        raise ValueError(f"workdir {folder} is not a folder")
    if Path(entry).is_absolute() or ".." in Path(entry).parts:
        raise ValueError(f"entry must be a path inside workdir, got {entry!r}")
    if mode not in ("full", "definitions"):
        raise ValueError(f"mode must be 'full' or 'definitions', got {mode!r}")
    seen: set[str] = set()
    for group in groups:
        for call in group:
            call_id = call.get("id")
            if not isinstance(call_id, str) or call_id in seen:
                raise ValueError(f"every call needs a unique string 'id', got {call_id!r}")
            seen.add(call_id)
    return str(folder.resolve()), str(entry)


def _stop_all(zygotes: list[_Zygote]) -> None:
    for zygote in zygotes:
        zygote.stop(wait_s=2.0)
