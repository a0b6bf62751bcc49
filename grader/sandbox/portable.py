"""``PortablePool``: the same requests as ``SandboxPool``, UNSANDBOXED, on any platform.

For the students' self-check where the sandbox cannot run: Windows (no ``fork``), macOS (no
``pidfd_open``), or ``GRADER_SANDBOX=portable``. It is the student's own code on their own
machine: nothing is isolated, and every result says so (``PORTABLE_WARNING``, first note).

Per run, in the grader's process (any thread)::

    copy the work folder to a private temp folder (regular files only, at most workdir_mib)
    subprocess: python -m grader.sandbox.portable_child   (see that module for its channels)
        stdin  <- one request frame: the copy, the entry, the mode, the groups left, the nonce;
                  then held open, silent: the child ends itself at its end of file (grader gone)
        stdout -> frames, read by a thread (no select on pipes: Windows) into a queue
        stderr -> raw bytes, read by a second thread into the run's stderr capture

The grader's thread takes the frames from the queue and enforces every wall time itself: the
child's start (``START_S``), the load (``Job.load_wall_s`` plus ``GRACE_S``), each call (its
``wall_s``, measured from its "begin") and the silence between calls (``IDLE_S``). Past one, or
when the child dies or sends bad data, it kills the child (its process group on POSIX, its
process tree on Windows); the call under way gets "timeout" or "crashed", the rest of its group
"not_run", and a fresh child (which loads the module again) runs the groups that remain, as the
sandbox forks a fresh call process for them. ``run`` in mode "full" falls back to "definitions"
when the whole load times out, as ``SandboxPool.run`` does. The results are ``SandboxResult``
and ``CallResult`` with the sandbox's statuses and messages; ``isolation`` is "portable".
"""
from __future__ import annotations

import base64
import binascii
import os
import queue
import secrets
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from grader.sandbox import protocol
from grader.sandbox.job import PROJECT_ROOT, Job
from grader.sandbox.limits import Limits
from grader.sandbox.pool import _call_result, _check_request, with_definitions_fallback
from grader.sandbox.results import NOT_RUN_REASONS, PORTABLE_WARNING, CallResult, Capture, SandboxResult, load_fallback, suspected_tampering

START_S = 120.0  # the child importing torch on a slow laptop, before it says "ready"
GRACE_S = 2.0  # on top of the load's own budget (the loader falls back to definitions by itself)
IDLE_S = 5.0  # longest silence of the child between two calls (harness code only)
DRAIN_S = 1.0  # reading the child's last bytes after it ended
SIGXCPU = getattr(signal, "SIGXCPU", None)
class _Stop(Exception):
    """The current child is done with: "timeout", "load_error", "crashed" (bad data, with a
    message) or "died" (its results channel ended; ``returncode`` None: it is still alive)."""

    def __init__(self, status: str, message: str = "", returncode: int | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.returncode = status, message, returncode

    @property
    def cpu(self) -> bool:
        return self.status == "died" and SIGXCPU is not None and self.returncode == -SIGXCPU

    def how(self) -> str:
        """How the child ended, in a few words."""
        code = self.returncode
        if self.status != "died":
            return self.message
        if code is None:
            return "it closed the results channel"
        if code < 0:
            try:
                return f"killed by {signal.Signals(-code).name}"
            except ValueError:
                return f"killed by signal {-code}"
        return f"exit status {code}"


class _Child:
    """One ``portable_child`` process, its two reader threads and its frame queue."""

    def __init__(self, job: Job, home: str, stdout: Capture, stderr: Capture) -> None:
        self.job = job
        self.frames: queue.Queue[tuple[str, object]] = queue.Queue()
        self.stdout, self.stderr = stdout, stderr
        self.startup = Capture(16 << 10)  # raw stderr before "ready": for a failed start only
        self.ready = threading.Event()
        self.dropped = {"out": 0, "err": 0}  # the running totals the child reported
        self.forged = 0
        self.stopped = False
        kwargs: dict = {"start_new_session": True} if os.name == "posix" else {
            "creationflags": getattr(subprocess, "CREATE_NEW_PROCESS_GROUP", 0)}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "grader.sandbox.portable_child"], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, bufsize=0, cwd=home, env=_environment(home),
            **kwargs,
        )
        self.threads = [threading.Thread(target=self._read_frames, daemon=True),
                        threading.Thread(target=self._read_stderr, daemon=True)]
        for thread in self.threads:
            thread.start()
        request = {"nonce": job.nonce, "workdir": job.workdir, "entry": job.entry, "mode": job.mode,
                   "groups": job.groups, "limits": job.limits.to_dict()}
        try:
            # stdin stays open (and silent) until ``stop``: its end of file tells the child that
            # the grader is gone, even when the grader is killed
            protocol.write_all(self.process.stdin.fileno(), protocol.frame(protocol.dumps(request)))
        except OSError:
            pass  # it died at once: the end of its results channel says so

    # -------------------------------------------------------------------- reader threads
    def _read_frames(self) -> None:
        reader = protocol.FrameReader((self.job.limits.result_mib << 20) + (64 << 10))
        try:
            while True:
                chunk = self.process.stdout.read(1 << 16)
                if not chunk:
                    break
                for data in reader.feed(chunk):
                    self.frames.put(("frame", protocol.loads_raw(data)))
        except protocol.ProtocolError as error:
            self.frames.put(("bad", f"malformed data ({error})"))
            return
        except (OSError, ValueError):
            pass
        self.frames.put(("eof", None))

    def _read_stderr(self) -> None:
        try:
            while True:
                chunk = self.process.stderr.read(1 << 16)
                if not chunk:
                    return
                (self.stderr if self.ready.is_set() else self.startup).add(chunk)
        except (OSError, ValueError):
            return

    # ------------------------------------------------------------------------ the parent side
    def next(self, deadline: float) -> dict:
        """The child's next message about the run; raises ``_Stop``."""
        while True:
            try:
                kind, payload = self.frames.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise _Stop("timeout") from None
            if kind == "eof":
                try:
                    code = self.process.wait(DRAIN_S)
                except subprocess.TimeoutExpired:
                    code = None
                raise _Stop("died", returncode=code)
            if kind == "bad":
                raise _Stop("crashed", f"the process sent {payload} on the results channel")
            message: dict = payload  # type: ignore[assignment]
            if message.get("n") != self.job.nonce:
                self.forged += 1
                continue
            kind = message.get("type")
            if kind in ("out", "err"):
                try:
                    data = base64.b64decode(str(message.get("d", "")).encode("ascii"), validate=True)
                except (binascii.Error, UnicodeEncodeError):
                    raise _Stop("crashed", "the process sent malformed output on the results channel") from None
                (self.stdout if kind == "out" else self.stderr).add(data)
            elif kind == "drop":
                stream, total = message.get("s"), message.get("b")
                if stream in self.dropped and type(total) is int and total > self.dropped[stream]:
                    (self.stdout if stream == "out" else self.stderr).count(total - self.dropped[stream])
                    self.dropped[stream] = total
            else:
                if kind == "ready":
                    self.ready.set()
                return message

    def kill(self) -> None:
        """Kill the child and what it started (its process group; on Windows its process tree)."""
        if os.name == "posix":
            try:  # before reaping it: until then its pid cannot name another group
                os.killpg(self.process.pid, signal.SIGKILL)
            except OSError:
                pass
        elif self.process.poll() is None:
            try:
                subprocess.run(["taskkill", "/F", "/T", "/PID", str(self.process.pid)],
                               capture_output=True, timeout=10, check=False)
            except (OSError, subprocess.SubprocessError):
                pass
        try:
            self.process.kill()
        except OSError:
            pass

    def stop(self) -> None:
        """Kill and reap the child; read what its threads still have (once)."""
        if self.stopped:
            return
        self.stopped = True
        self.kill()
        self.process.wait()
        for thread in self.threads:
            thread.join(DRAIN_S)
        streams = [self.process.stdin]
        if not any(thread.is_alive() for thread in self.threads):  # else a grandchild holds a pipe
            streams += [self.process.stdout, self.process.stderr]
        for stream in streams:
            try:
                stream.close()
            except OSError:
                pass


def _environment(home: str) -> dict[str, str]:
    """The grader's environment, plus: the harness importable, one thread, a private HOME/TMP."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([PROJECT_ROOT, *filter(None, [env.get("PYTHONPATH")])])
    for name in ("HOME", "TMPDIR", "TMP", "TEMP"):
        env[name] = home
    env.update({
        "MPLCONFIGDIR": os.path.join(home, "matplotlib"), "MPLBACKEND": "Agg",
        "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
        "PYTHONHASHSEED": "0", "PYTHONDONTWRITEBYTECODE": "1", "PYTHONIOENCODING": "utf-8",
    })
    return env


def private_copy(source: str, destination: str, limits: Limits) -> list[str]:
    """Copy the regular files and folders of ``source`` (never following a link) into
    ``destination`` (an existing folder); notes on what was left out. Portable counterpart of
    ``filesystem.private_copy``, which needs ``O_DIRECTORY`` and ``/proc``."""
    budget = limits.workdir_mib << 20
    skipped: list[str] = []
    for folder, dirnames, filenames in os.walk(source, followlinks=False):
        relative = os.path.relpath(folder, source)
        target_folder = destination if relative == "." else os.path.join(destination, relative)
        for name in list(dirnames):
            if os.path.islink(os.path.join(folder, name)):
                dirnames.remove(name)
                skipped.append(os.path.normpath(os.path.join(relative, name)))
            else:
                os.mkdir(os.path.join(target_folder, name))
        for name in filenames:
            path = os.path.join(folder, name)
            info = os.lstat(path)
            if not stat.S_ISREG(info.st_mode):
                skipped.append(os.path.normpath(os.path.join(relative, name)))
                continue
            budget -= info.st_size
            if budget < 0:
                raise RuntimeError(f"the work folder holds more than {limits.workdir_mib} MiB (Limits.workdir_mib)")
            try:
                shutil.copyfile(path, os.path.join(target_folder, name))
            except OSError:  # unreadable: left out, as the sandbox leaves it out
                skipped.append(os.path.normpath(os.path.join(relative, name)))
    if not skipped:
        return []
    shown = ", ".join(skipped[:5]) + (f" and {len(skipped) - 5} more" if len(skipped) > 5 else "")
    return [f"not copied into the sandbox (symlinks or special files): {shown}"]


class _Run:
    """One load of the submission and its groups, over as many children as failures require."""

    def __init__(self, pool: PortablePool, workdir: str, entry: str, mode: str, groups: list[list[dict]]) -> None:
        self.pool, self.limits = pool, pool.limits
        self.workdir, self.entry, self.mode, self.groups = workdir, entry, mode, groups
        self.kinds = {call["id"]: call.get("kind") for group in groups for call in group}
        cap = self.limits.output_kib << 10
        self.stdout, self.stderr = Capture(cap), Capture(cap)
        self.result = SandboxResult(status="sandbox_error", message="", isolation="portable")
        self.forged = 0

    def execute(self) -> SandboxResult:
        result = self.result
        folder = tempfile.mkdtemp(prefix="grader-portable-")
        try:
            copy, home = os.path.join(folder, "submission"), os.path.join(folder, "home")
            os.mkdir(copy)
            os.mkdir(home)
            try:
                result.notes += private_copy(self.workdir, copy, self.limits)
            except (OSError, RuntimeError) as error:
                result.message = f"{type(error).__name__}: {error}"
                return result
            group = 0
            while group < len(self.groups):
                group = self._child(copy, home, group)
        finally:
            shutil.rmtree(folder, ignore_errors=True)
            result.stdout, result.stderr = self.stdout.text(), self.stderr.text()
            result.output_dropped_bytes = self.stdout.dropped + self.stderr.dropped
            if self.forged:
                result.notes.append(f"dropped {self.forged} message(s) on the results channel that did "
                                    "not come from the harness (forged?)")
        return result

    def _child(self, copy: str, home: str, first_group: int) -> int:
        """Run the groups from ``first_group`` on in one child; the index of the next group to run."""
        job = Job(limits=self.limits, workdir=copy, entry=self.entry, mode=self.mode,
                  groups=self.groups[first_group:], isolation="portable", nonce=secrets.token_hex(16),
                  inside_workdir=copy)
        plan = [(index, call) for index, group in enumerate(self.groups) if index >= first_group for call in group]
        position = 0  # in ``plan``: the call whose outcome comes next
        phase, begun_at = "setup", None
        try:
            child = self.pool._start(job, home, self.stdout, self.stderr)
        except OSError as error:
            return self._give_up(first_group, "sandbox_error", f"the child process could not start: {error}")
        deadline = time.monotonic() + START_S
        try:
            while True:
                message = child.next(deadline)
                kind, now = message.get("type"), time.monotonic()
                if phase == "setup":
                    if kind != "ready":
                        raise _Stop("crashed", f"an unexpected {kind!r} message before the child was ready")
                    if first_group == 0:
                        self.result.notes += [str(note) for note in message.get("notes", [])][:10]
                    phase, deadline = "load", now + job.load_wall_s() + GRACE_S
                elif phase == "load":
                    if kind == "load_error":
                        raise _Stop("load_error", str(message.get("message", "")))
                    if kind != "loaded":
                        raise _Stop("crashed", f"an unexpected {kind!r} message while the module was loading")
                    if first_group == 0:
                        self.result.notes += [str(note) for note in message.get("notes", [])][:50]
                        self.result.load_fallback = load_fallback(message.get("fallback"))
                        self.result.suspected_tampering = suspected_tampering(message.get("tampering"))
                        self.result.status = "ok"
                    phase, deadline = "calls", now + IDLE_S
                elif kind == "finished" and position == len(plan):
                    return len(self.groups)
                elif kind in ("begin", "result", "error", "crashed") and position < len(plan) \
                        and message.get("id") == plan[position][1]["id"] and (kind == "begin") == (begun_at is None):
                    if kind == "begin":
                        begun_at, deadline = now, now + job.call_wall_s(plan[position][1])
                    else:
                        self._record(plan[position][1]["id"], "ok" if kind == "result" else kind, message,
                                     now - begun_at if begun_at is not None else 0.0)
                        position, begun_at, deadline = position + 1, None, now + IDLE_S
                elif kind == "child_error":
                    raise _Stop("crashed", f"the harness failed in the process: {message.get('message')}")
                else:
                    raise _Stop("crashed", f"the process sent an unexpected {kind!r} message on the results "
                                f"channel for call {message.get('id')!r}")
        except _Stop as stop:
            child.stop()  # first: the stderr of a failed start, read to its end
            if phase != "calls":
                return self._load_failed(first_group, phase, stop, child, job)
            if position == len(plan):
                return len(self.groups)  # every call came back; only the goodbye is missing
            group, call = plan[position]
            status, error = self._call_failure(stop, job, call, begun_at is not None)
            self._record(call["id"], status, {"error": error},
                         time.monotonic() - begun_at if begun_at is not None else 0.0)
            past = "timed out" if status == "timeout" else "crashed"
            for index, later in plan[position + 1:]:
                if index == group:
                    self._record(later["id"], "not_run",
                                 {"error": f"not run: call {call['id']} of its group {past}"}, 0.0)
            return group + 1
        finally:
            child.stop()
            self.forged += child.forged
            self.pool._forget(child)

    # -------------------------------------------------------------------------- outcomes
    def _record(self, call_id: str, status: str, message: dict, duration: float) -> None:
        frame = {"id": call_id, "status": status, "duration_s": round(duration, 6),
                 "error": str(message.get("error", ""))[:4000], "value": message.get("value")}
        self.result.calls[call_id] = _call_result(frame, self.kinds.get(call_id))

    @staticmethod
    def _call_failure(stop: _Stop, job: Job, call: dict, begun: bool) -> tuple[str, str]:
        """(status, message) of the call under way when its child stopped, as ``inside`` says it."""
        if stop.status == "timeout":
            if begun:
                return "timeout", f"exceeded {job.call_wall_s(call):g} s wall time"
            return "crashed", f"stopped responding between calls for {IDLE_S:g} s"
        if stop.cpu:
            return "timeout", f"exceeded {job.call_cpu_s(call):g} s CPU time"
        if stop.status == "died" and stop.returncode is not None and stop.returncode >= 0:
            return "crashed", f"the process exited with status {stop.returncode} (os._exit?) before returning"
        return "crashed", stop.how()

    def _load_failed(self, first_group: int, phase: str, stop: _Stop, child: _Child, job: Job) -> int:
        if phase == "setup":
            tail = " | ".join(child.startup.text().strip().splitlines()[-3:])
            why = (f"did not say it was ready within {START_S:g} s" if stop.status == "timeout"
                   else f"ended while starting ({stop.how()})")
            return self._give_up(first_group, "sandbox_error",
                                 f"the child process {why}" + (f": {tail}" if tail else ""))
        if stop.status == "load_error":
            return self._give_up(first_group, "load_error", stop.message)
        if stop.status == "timeout":
            return self._give_up(first_group, "timeout",
                                 f"loading the module ran past {job.load_wall_s() + GRACE_S:g} s")
        if stop.cpu:
            return self._give_up(first_group, "timeout",
                                 f"loading the module used more than {job.load_cpu_s():g} s of CPU time")
        if stop.status == "died":
            return self._give_up(first_group, "crashed", f"the module's top level ended the process ({stop.how()})")
        return self._give_up(first_group, "crashed", stop.message)

    def _give_up(self, first_group: int, status: str, message: str) -> int:
        """No child for the groups from ``first_group`` on: the run's status, or (after a restart)
        their calls not run."""
        if first_group == 0:
            self.result.status, self.result.message = status, message
            reason = NOT_RUN_REASONS.get(status) or f"the run stopped: {message}"
            for group in self.groups:
                for call in group:
                    self._record(call["id"], "not_run", {"error": f"not run: {reason}"}, 0.0)
            return len(self.groups)
        self.result.notes.append(f"a fresh process for the calls left could not load the module: {message}")
        for group in self.groups[first_group:]:
            for call in group:
                self._record(call["id"], "not_run", {"error": f"not run: {message}"}, 0.0)
        return len(self.groups)


class PortablePool:
    """``SandboxPool``'s interface (``run``, ``close``, ``limits``, ``isolation``), unsandboxed."""

    isolation = "portable"

    def __init__(self, limits: Limits = Limits(), workers: int = 1) -> None:
        if workers < 1:
            raise ValueError(f"workers must be at least 1, got {workers}")
        self.limits = limits
        self._slots = threading.BoundedSemaphore(workers)
        self._children: set[_Child] = set()
        self._lock = threading.Lock()
        self._closed = False

    def run(self, workdir: Path | str, entry: str, mode: str, groups: list[list[dict]]) -> SandboxResult:
        """Load ``workdir/entry`` in a fresh child process and run ``groups`` of calls; blocks."""
        workdir, entry = _check_request(workdir, entry, mode, groups)
        if self._closed:
            raise RuntimeError("this PortablePool is closed")
        started = time.monotonic()
        with self._slots:
            result = with_definitions_fallback(lambda m: _Run(self, workdir, entry, m, groups).execute(), mode)
        result.notes.insert(0, PORTABLE_WARNING)
        for call_id in (call["id"] for group in groups for call in group):
            if call_id not in result.calls:
                result.calls[call_id] = CallResult(call_id, "not_run", None,
                                                   f"not run: {result.message or 'the run stopped'}", 0.0)
        result.duration_s = time.monotonic() - started
        return result

    def _start(self, job: Job, home: str, stdout: Capture, stderr: Capture) -> _Child:
        with self._lock:
            if self._closed:
                raise OSError("this PortablePool is closed")
            child = _Child(job, home, stdout, stderr)
            self._children.add(child)
        return child

    def _forget(self, child: _Child) -> None:
        with self._lock:
            self._children.discard(child)

    def close(self) -> None:
        """Kill the children still running (their runs end with those calls crashed)."""
        with self._lock:
            self._closed = True
            children = list(self._children)
        for child in children:
            child.kill()

    def __enter__(self) -> PortablePool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
