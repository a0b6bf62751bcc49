"""The sandbox's PID 1 ("P1") and its call processes: the only code that runs next to student code.

P1 finishes the sandbox (new root, rlimits, capabilities dropped), reports ``ready``, loads the
student's module with ``grader.sandbox.loader``, reports ``loaded`` (or ``load_error``), then
runs the *groups* of calls (one group per graded function) in a forked call process, so that a
crash, an exit or a hang costs that group only::

    P1 (PID 1) --fork--> call process: for each group, for each call: "begin", execute_call,
                         then one of "result" | "error" | "crashed" (frames on its own pipe);
                         between two groups it waits for P1's go
       P1 relays each well-formed frame to the supervisor, kills the call process when a call
       runs past its wall time ("timeout") or sends malformed data, reports a death
       ("crashed": signal or exit), marks the rest of the group "not_run", kills every other
       process of the submission, and forks a fresh call process for the groups that remain.
       Between two groups of a call process that is still well, P1 kills every process but
       that call process before it says go.

One call process runs every group until one fails (as the portable backend's child does): a
fork and an exit of this interpreter cost tens of milliseconds, which one process per function
paid eight times per submission. What one function changes in the module's state (a global, a
monkeypatch) stays changed for the functions after it; that is the student's own process and
state, as when the student runs the file, and the grader judges every function's values itself.

Once the student's module has run in P1, P1 is as untrusted as the module: nothing here decides
a verdict or holds an expected value, the supervisor outside checks the order of the frames and
enforces every wall time again, and the grader validates every value. What this module binds
at import (``os`` functions, builtins) is bound before student code runs, so naive
monkeypatching does not reach it.
"""
from __future__ import annotations

import builtins as _builtins_module

__builtins__ = dict(_builtins_module.__dict__)  # noqa: A001 - a private copy (see the docstring)

import gc  # noqa: E402
import io  # noqa: E402
import math  # noqa: E402
import os  # noqa: E402
import select  # noqa: E402
import signal  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

from grader.sandbox import calls as _calls  # noqa: E402
from grader.sandbox import filesystem, loader, namespaces, privileges, protocol, rlimits, runner, seccomp, tamper  # noqa: E402
from grader.sandbox.job import EXIT_CPU, EXIT_SETUP, Job  # noqa: E402

_fork, _write, _read, _close, _pipe = os.fork, os.write, os.read, os.close, os.pipe
_kill, _waitpid, _pidfd_open, _exit, _getpid = os.kill, os.waitpid, os.pidfd_open, os._exit, os.getpid
_dup2, _open, _closerange, _setpgid, _killpg = os.dup2, os.open, os.closerange, os.setpgid, os.killpg
_set_blocking, _listdir = os.set_blocking, os.listdir
_pidfd_send_signal = signal.pidfd_send_signal
_gc_freeze = gc.freeze
_poll, _POLLIN, _POLLHUP = select.poll, select.POLLIN, select.POLLHUP
_monotonic = time.monotonic
_execute_call = _calls.execute_call
_run_one_call, _set_call_cpu, _text = runner.one_call, rlimits.set_call_cpu, runner.text
_tampering = tamper.since_baseline
_load_module = loader.load_module
_SubmissionLoadError = loader.SubmissionLoadError
_WNOHANG = os.WNOHANG
_signal, _SIG_DFL, _SIG_IGN = signal.signal, signal.SIG_DFL, signal.SIG_IGN

IDLE_S = 5.0  # longest silence of a call process between two calls (harness code only)
KILL_ROUNDS = 8  # rounds of killing between two groups (each kills what the last one missed)
KILL_WAIT_S = 1.0  # how long one round waits for its processes to be dead
RESET_SIGNALS = tuple(
    sig for sig in signal.Signals
    if sig not in (signal.SIGKILL, signal.SIGSTOP, signal.SIGXFSZ, signal.SIGPIPE, signal.SIGCHLD)
)


class Channel:
    """Frames from this process to whoever reads ``fd``, each carrying the run's nonce."""

    def __init__(self, fd: int, nonce: str, max_bytes: int) -> None:
        self.fd, self.nonce, self.max_bytes = fd, nonce, max_bytes

    def send(self, kind: str, **fields: object) -> None:
        fields["type"], fields["n"] = kind, self.nonce
        protocol.write_all(self.fd, protocol.frame(protocol.dumps(fields, self.max_bytes)))

    def relay(self, data: bytes) -> None:
        protocol.write_all(self.fd, protocol.frame(data))


def frame_cap(job: Job) -> int:
    return runner.frame_cap(job.limits)


# -------------------------------------------------------------------------------------- P1 setup
def p1_main(job: Job, result_fd: int, out_fd: int, err_fd: int, go_fd: int) -> None:
    """Never returns."""
    channel = Channel(result_fd, job.nonce, frame_cap(job))
    try:
        if _read(go_fd, 1) != b"g":  # the supervisor has put us in our cgroups
            _exit(EXIT_SETUP)
        null = _open("/dev/null", os.O_RDONLY)
        _dup2(null, 0)
        _dup2(out_fd, 1)
        _dup2(err_fd, 2)
        if result_fd != 3:
            _dup2(result_fd, 3)
            channel.fd = 3
        _closerange(4, 1 << 16)
        step = None
        for step in SETUP_STEPS[job.isolation]:
            step(job)
    except BaseException as error:  # noqa: BLE001 - PID 1 must report, whatever happened
        try:
            where = getattr(step, "__qualname__", "starting")
            channel.send("setup_error", message=f"{where}: {type(error).__name__}: {error}")
        finally:
            _exit(EXIT_SETUP)
    channel.send("ready", notes=job.notes)
    _load_and_run(job, channel)


def _environment(job: Job) -> None:
    home = "/tmp" if job.isolation == "namespaces" else os.path.join(os.getcwd(), ".tmp")
    os.makedirs(home, exist_ok=True)
    os.environ.clear()
    os.environ.update({
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": home,
        "TMPDIR": home,
        "LANG": "C.UTF-8",
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "OPENBLAS_NUM_THREADS": "1",
        "MPLCONFIGDIR": os.path.join(home, "matplotlib"),
        "PYTHONDONTWRITEBYTECODE": "1",
    })
    sys.dont_write_bytecode = True
    # fresh, unbuffered streams on the capture pipes (the zygote's wrapped /dev/null)
    sys.stdout = sys.__stdout__ = _text_stream(1)
    sys.stderr = sys.__stderr__ = _text_stream(2)


def _text_stream(fd: int) -> io.TextIOWrapper:
    return io.TextIOWrapper(io.FileIO(fd, "w", closefd=False), encoding="utf-8",
                            errors="backslashreplace", write_through=True)


def _cpu_handler(signum: int, frame: object) -> None:
    _exit(EXIT_CPU)  # PID 1 ignores SIGXCPU's default action: exit on purpose


def _signals(job: Job) -> None:
    _signal(signal.SIGXCPU, _cpu_handler)


def _enter_copy(job: Job) -> None:
    os.chdir(job.inside_workdir)


SETUP_STEPS = {
    "namespaces": (
        filesystem.enter_root, namespaces.set_hostname, _environment, rlimits.apply,
        *privileges.STEPS, seccomp.install, _signals,
    ),
    # no isolation: never touch host-wide settings (max_user_namespaces) from here
    "none": (
        _enter_copy, _environment, rlimits.apply, privileges.first_to_die,
        *((privileges.drop_root,) if os.geteuid() == 0 else ()),
        privileges.no_new_privileges, seccomp.install, _signals,
    ),
}


# ----------------------------------------------------------------------------------- load + calls
def _load_and_run(job: Job, channel: Channel) -> None:
    try:
        namespace, notes = _load_module(
            job.inside_workdir, job.entry, job.mode, job.limits.statement_wall_s,
            import_timeout_s=job.limits.import_wall_s,
        )
    except _SubmissionLoadError as error:
        channel.send("load_error", message=_text(error))
        _exit(0)
    except BaseException as error:  # noqa: BLE001
        channel.send("load_error", message=describe_exception(error, job))
        _exit(0)
    try:
        _signal(signal.SIGXCPU, _SIG_IGN)
        rlimits.lift_load_cpu(job)
        _gc_freeze()  # fewer copied pages in each call process
        fallback = getattr(notes, "fallback", None)
        channel.send("loaded", notes=[_text(note) for note in notes],
                     fallback=[_text(part) for part in fallback] if fallback else None, tampering=_tampering())
        _kill_others(job, None)  # nothing started by the top level outlives the load
        next_group = 0
        while next_group < len(job.groups):
            next_group = _run_groups(job, channel, namespace, job.groups, next_group)
        channel.send("finished")
    except BaseException as error:  # noqa: BLE001
        try:
            channel.send("p1_error", message=f"{type(error).__name__}: {_text(error)}")
        except BaseException:  # noqa: BLE001
            pass
    _exit(0)


def describe_exception(error: BaseException, job: Job) -> str:
    """``"ZeroDivisionError: division by zero"`` and the last lines of the student's files."""
    return runner.describe_exception(error, job.inside_workdir)


def _kill_others(job: Job, call_pid: int | None) -> dict[int, int]:
    """Kill every process of the submission but P1, reap them; their statuses by pid."""
    if job.isolation == "namespaces":
        try:
            _kill(-1, signal.SIGKILL)  # from PID 1: everything else in the namespace
        except ProcessLookupError:
            pass
    elif call_pid is not None:
        try:
            _killpg(call_pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    return _reap({})


def _reap(statuses: dict[int, int]) -> dict[int, int]:
    while True:
        try:
            pid, status = _waitpid(-1, _WNOHANG)
        except ChildProcessError:
            return statuses
        if pid == 0:
            return statuses
        statuses[pid] = status


def describe_status(status: int, job: Job, call: dict) -> tuple[str, str]:
    """(result status, message) for a call process that died while running ``call``."""
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        if sig == signal.SIGXCPU:
            return "timeout", f"exceeded {job.call_cpu_s(call):g} s CPU time"
        try:
            name = signal.Signals(sig).name
        except ValueError:
            name = f"signal {sig}"
        return "crashed", f"killed by {name}"
    code = os.WEXITSTATUS(status)
    return "crashed", f"the process exited with status {code} (os._exit?) before returning"


class _Span:
    """P1's view of the groups one call process runs: which call comes next, until when it may
    take, and whether a group has just ended (the call process then waits for P1's go)."""

    def __init__(self, job: Job, channel: Channel, groups: list[list[dict]]) -> None:
        self.job, self.channel = job, channel
        self.calls = [call for group in groups for call in group]
        self.group_of = [k for k, group in enumerate(groups) for _ in group]
        self.reader = protocol.FrameReader(frame_cap(job))
        self.index = 0  # the call whose outcome comes next
        self.wall: float | None = None  # the running call's wall time, while one runs
        self.deadline = _monotonic() + IDLE_S
        self.between_groups = False  # a group ended: no frame may come before P1's go

    @property
    def done(self) -> bool:
        return self.index >= len(self.calls)

    def feed(self, chunk: bytes) -> tuple[str, str] | None:
        """Relay the whole frames in ``chunk``; a (status, message) failure for bad data."""
        try:
            frames = self.reader.feed(chunk)
        except protocol.TooLarge as error:
            return "crashed", f"sent a message of {error} (Limits.result_mib)"
        for data in frames:
            try:
                message = protocol.loads_raw(data)
            except protocol.ProtocolError as error:
                return "crashed", f"wrote malformed data to the results channel ({error})"
            if message.get("n") != self.job.nonce:
                continue  # not written by the harness (a forgery): dropped
            kind = message.get("type")
            if (self.done or self.between_groups or message.get("id") != self.calls[self.index]["id"]
                    or kind not in CALL_FRAMES or (kind == "begin" and self.wall is not None)):
                return "crashed", "sent an unexpected message on the results channel"
            self.channel.relay(data)
            if kind == "begin":
                self.wall = self.job.call_wall_s(self.calls[self.index])
                self.deadline = _monotonic() + self.wall
            else:
                self.index += 1
                self.wall = None
                self.deadline = _monotonic() + IDLE_S
                self.between_groups = not self.done and self.group_of[self.index] != self.group_of[self.index - 1]
        return None

    def rest_of_group(self) -> list[dict]:
        """The calls after the current one in the current one's group."""
        k = self.group_of[self.index]
        return [call for call, g in zip(self.calls[self.index + 1:], self.group_of[self.index + 1:]) if g == k]

    def go_on(self) -> None:
        """The next group may start (its silence allowance starts now)."""
        self.between_groups = False
        self.deadline = _monotonic() + IDLE_S

    def expired(self) -> tuple[str, str]:
        if self.wall is not None:
            return "timeout", f"exceeded {self.wall:g} s wall time"
        return "crashed", f"stopped responding between calls for {IDLE_S:g} s"


def _span(job: Job, groups: list[list[dict]], first: int) -> list[list[dict]]:
    """The groups one call process runs from ``first`` on: all that remain in a namespace
    sandbox (a fork of this big interpreter costs tens of ms, one per function otherwise),
    one at a time without isolation (there P1 cannot spare the call process when it kills the
    others)."""
    return groups[first:] if job.isolation == "namespaces" else groups[first:first + 1]


def _run_groups(job: Job, channel: Channel, namespace: dict, groups: list[list[dict]], first: int) -> int:
    """Run ``groups`` from ``first`` on in one forked call process, until one of its calls times
    out, crashes or sends bad data (that call is reported, the rest of its group "not_run");
    between two groups every other process of the submission is killed. The index of the
    next group to run."""
    span = _span(job, groups, first)
    read_fd, write_fd = _pipe()
    go_read, go_write = _pipe()
    pid = _fork()
    if pid == 0:
        _close(read_fd)
        _close(go_write)
        _call_process(job, namespace, span, write_fd, go_read, channel.fd)
    _close(write_fd)
    _close(go_read)
    pidfd = _pidfd_open(pid)
    poller = _poll()
    poller.register(read_fd, _POLLIN)
    poller.register(pidfd, _POLLIN)
    state = _Span(job, channel, span)
    failure: tuple[str, str] | None = None
    died = False
    statuses: dict[int, int] = {}
    while not state.done and failure is None and not died:
        timeout_ms = max(0, math.ceil((state.deadline - _monotonic()) * 1000))
        events = dict(poller.poll(timeout_ms))
        if read_fd in events:
            chunk = _read(read_fd, 1 << 20)
            if chunk:
                failure = state.feed(chunk)
            else:
                died = True  # every writer is gone
        if pidfd in events:
            died = True
        if failure is None and not died and state.between_groups:
            statuses = _kill_all_but(job, pid)
            died = pid in statuses
            if not died:
                try:
                    _write(go_write, b"g")
                except OSError:
                    died = True
                state.go_on()
        if failure is None and not died and not state.done and _monotonic() >= state.deadline:
            failure = state.expired()
    if died and failure is None and not state.done:
        # it died: relay what it wrote before dying, then say how it died
        statuses.update(_kill_others(job, pid))
        _set_blocking(read_fd, False)
        while not state.done and failure is None:
            try:
                chunk = _read(read_fd, 1 << 20)
            except BlockingIOError:
                break
            if not chunk:
                break
            failure = state.feed(chunk)
        if failure is None and not state.done:
            status = statuses.get(pid)
            if status is None:
                try:
                    _, status = _waitpid(pid, 0)
                    statuses[pid] = status
                except ChildProcessError:
                    status = None
                    statuses[pid] = -1
            failure = (describe_status(status, job, state.calls[state.index]) if status is not None
                       else ("crashed", "the call process disappeared"))
    next_group = len(groups)
    if failure is not None and not state.done:
        k = state.group_of[state.index]
        first_id = state.calls[state.index]["id"]
        channel.send(failure[0], id=first_id, error=failure[1])
        for call in state.rest_of_group():
            channel.send("not_run", id=call["id"], error=f"not run: call {first_id} of its group {_past(failure[0])}")
        next_group = first + k + 1
    elif state.done:
        next_group = first + len(span)
    if pid in statuses:  # reaped: its pid may belong to another process by now
        _kill_others(job, None)
    else:
        try:
            _kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        _kill_others(job, pid)
        try:
            _waitpid(pid, 0)
        except ChildProcessError:
            pass
    for fd in (read_fd, go_write, pidfd):
        _close(fd)
    return next_group


def _kill_all_but(job: Job, keep: int) -> dict[int, int]:
    """From PID 1 of a namespace sandbox, between two groups: kill every process but PID 1 and
    the call process ``keep`` and wait until they are dead (a process started by one function
    never runs into the next), then reap P1's children; their statuses by pid (``keep``'s too
    if it died meanwhile)."""
    if job.isolation == "namespaces":
        for _ in range(KILL_ROUNDS):  # a process may fork while the others are being killed
            pidfds = []
            for pid in _live_pids():
                if pid not in (1, keep):
                    try:
                        pidfds.append(_pidfd_open(pid))
                    except OSError:  # gone already
                        pass
            if not pidfds:
                break
            poller = _poll()
            for fd in pidfds:
                try:
                    _pidfd_send_signal(fd, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                poller.register(fd, _POLLIN)  # readable once the process has exited
            deadline, pending = _monotonic() + KILL_WAIT_S, len(pidfds)
            while pending and _monotonic() < deadline:
                for fd, _ in poller.poll(max(1, math.ceil((deadline - _monotonic()) * 1000))):
                    poller.unregister(fd)
                    pending -= 1
            for fd in pidfds:
                _close(fd)
    return _reap({})


def _live_pids() -> list[int]:
    """The sandbox's processes that are not zombies (its own /proc: PID 1's namespace)."""
    pids = []
    for name in _listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as stat:
                state = stat.read().rpartition(b")")[2].split()[0]
        except (OSError, IndexError):
            continue
        if state not in (b"Z", b"X"):
            pids.append(int(name))
    return pids


def _past(status: str) -> str:
    return {"timeout": "timed out", "crashed": "crashed"}.get(status, "failed")


CALL_FRAMES = ("begin", "result", "error", "crashed")


# -------------------------------------------------------------------------------- call process
def _call_process(job: Job, namespace: dict, groups: list[list[dict]], write_fd: int, go_fd: int,
                  p1_fd: int) -> None:
    """Run ``groups`` in order, each after P1's go on ``go_fd`` (the first at once). Never returns."""
    try:
        _close(p1_fd)  # the supervisor's channel stays P1's alone
        if job.isolation != "namespaces":
            _setpgid(0, 0)
        for sig in RESET_SIGNALS:
            try:
                _signal(sig, _SIG_DFL)
            except (OSError, ValueError, RuntimeError):
                pass
        channel = Channel(write_fd, job.nonce, frame_cap(job))
        for k, group in enumerate(groups):
            if k and _read(go_fd, 1) != b"g":  # P1 has killed what the last group started
                _exit(EXIT_SETUP)
            for call in group:
                _one_call(job, namespace, call, channel)
    except BaseException:  # noqa: BLE001
        _exit(EXIT_SETUP)
    _exit(0)


def _one_call(job: Job, namespace: dict, call: dict, channel: Channel) -> None:
    _run_one_call(job, channel, _execute_call, namespace, call, _set_call_cpu)
