"""The child process of ``PortablePool``: loads the student's module and runs its calls, UNSANDBOXED.

Started by ``grader.sandbox.portable`` as ``python -m grader.sandbox.portable_child`` on any
platform (no fork, pidfd, poll or prctl; ``resource`` and ``signal.setitimer`` optional)::

    grader --stdin: one request frame, then nothing (its end of file: the grader is gone)--> child
    grader <--stdout: frames only: "ready", "loaded" | "load_error", per call "begin" and one of
              "result" | "error" | "crashed", "out"/"err"/"drop" (the student's Python output),
              "finished"-- child
    grader <--stderr: raw bytes: C libraries, subprocesses, the interpreter's own crash report-- child

stdout carries frames and nothing else. Before anything can print (numpy, torch, the student)
this module moves the frame channel to a private, non-inheritable descriptor and points fd 1 at
stderr; ``sys.stdout``/``sys.stderr`` then become writers that send what the student prints as
"out"/"err" frames, synchronously (nothing is lost when the process dies), keeping
``output_kib`` of each and counting the rest. Each output frame is at most ``PIPE_BUF`` bytes and
written with one ``write``, which a pipe performs whole or not at all: the loader's statement
budget (an exception raised from a SIGALRM handler) can interrupt a ``print`` but never leave
half a frame on the channel. Every frame carries the run's nonce.

The request names the groups this child runs (after a call times out or crashes, the parent kills
this process and starts a fresh one for the groups that remain), and the private copy of the
submission, made by the parent. Wall times are enforced by the parent; CPU time, memory and file
sizes by rlimits where ``resource`` exists. Unlike the sandbox, every group runs in this one
process: what a call changes in the module stays changed for the later groups.
"""
from __future__ import annotations

import os
import sys

# First, before any import can print: the frame channel leaves fd 1 for a private descriptor
# (``os.dup``: not inherited by subprocesses), and fd 1 becomes a copy of stderr. (Only when run
# as the child: importing this module elsewhere, e.g. in a test, changes nothing.)
_FRAMES_FD = -1
if __name__ == "__main__":
    _FRAMES_FD = os.dup(1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr

import base64  # noqa: E402
import importlib  # noqa: E402
import io  # noqa: E402
import math  # noqa: E402
import re  # noqa: E402
import select  # noqa: E402
import signal  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
import traceback  # noqa: E402

from grader.sandbox import protocol, runner  # noqa: E402
from grader.sandbox.job import EXIT_SETUP, PRELOADED, Job  # noqa: E402
from grader.sandbox.limits import Limits  # noqa: E402

try:
    import resource

    from grader.sandbox import rlimits
except ImportError:  # Windows (or a platform emulated without ``resource``)
    resource = rlimits = None

REQUEST_CAP = 1 << 30  # the request comes from the grader (trusted): a check's input arrays
OUTPUT_FRAME_MAX = min(getattr(select, "PIPE_BUF", 512), 4096)  # one write a pipe makes atomically
DROP_REPORT_S = 0.25  # how often the count of dropped output bytes is sent, at most

frame_cap = runner.frame_cap
_text, _flush = runner.text, runner.flush_streams


class Channel:
    """Frames to the parent on the private descriptor, each carrying the run's nonce.

    Thread-safe (student threads print too). A write that would re-enter a frame under way on
    the same thread (a ``__del__`` or a signal handler that prints) is dropped, never nested.
    """

    def __init__(self, fd: int, nonce: str, max_bytes: int) -> None:
        self.fd, self.nonce, self.max_bytes = fd, nonce, max_bytes
        self.lock = threading.Lock()
        self.owner: int | None = None

    def send(self, kind: str, **fields: object) -> None:
        fields["type"], fields["n"] = kind, self.nonce
        self.write(protocol.frame(protocol.dumps(fields, self.max_bytes)))

    def relay(self, data: bytes) -> None:
        self.write(protocol.frame(data))

    def write(self, data: bytes, atomic: bool = False) -> bool:
        """Write one whole frame; False when it was dropped (re-entered on this thread)."""
        me = threading.get_ident()
        if self.owner == me:
            return False
        with self.lock:
            self.owner = me
            try:
                if atomic:
                    os.write(self.fd, data)  # <= PIPE_BUF: whole or nothing
                else:
                    protocol.write_all(self.fd, data)
            finally:
                self.owner = None
        return True


class Output(io.RawIOBase):
    """``sys.stdout`` or ``sys.stderr`` (under a TextIOWrapper): each write becomes frames."""

    def __init__(self, channel: Channel, stream: str, cap: int, fd: int) -> None:
        super().__init__()
        self.channel, self.stream, self.cap, self.fd = channel, stream, cap, fd
        self.kept = 0
        self.dropped = 0
        self.reported = 0
        self.reported_at = time.monotonic()
        head = protocol.frame(protocol.dumps({"type": stream, "n": channel.nonce, "d": ""}))
        room = OUTPUT_FRAME_MAX - len(head)
        self.chunk = max(3, room // 4 * 3)  # raw bytes per frame, in base64

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return False

    def fileno(self) -> int:
        return self.fd  # raw writes to it reach the parent's stderr capture

    def write(self, data: bytes) -> int:  # type: ignore[override]
        data = bytes(data)
        room = max(self.cap - self.kept, 0)
        keep = data[:room]
        for start in range(0, len(keep), self.chunk):
            piece = keep[start:start + self.chunk]
            frame = protocol.frame(protocol.dumps(
                {"type": self.stream, "n": self.channel.nonce, "d": base64.b64encode(piece).decode("ascii")}))
            if self.channel.write(frame, atomic=True):
                self.kept += len(piece)
            else:
                self.dropped += len(piece)
        self.dropped += len(data) - len(keep)
        if self.dropped != self.reported and time.monotonic() - self.reported_at >= DROP_REPORT_S:
            self.report()
        return len(data)

    def report(self) -> None:
        """Send the count of dropped bytes (a running total) if it changed."""
        if self.dropped != self.reported:
            self.reported, self.reported_at = self.dropped, time.monotonic()
            frame = protocol.frame(protocol.dumps({"type": "drop", "n": self.channel.nonce,
                                                   "s": self.stream, "b": self.dropped}))
            self.channel.write(frame, atomic=True)


def _text_stream(raw: Output) -> io.TextIOWrapper:
    return io.TextIOWrapper(raw, encoding="utf-8", errors="backslashreplace", write_through=True)


# ------------------------------------------------------------------------------------ startup
def read_request() -> dict:
    """The one request frame on stdin. The parent then keeps the pipe open and silent: its end
    of file means the parent is gone, and a watchdog thread ends this process (any platform;
    the parent's own Ctrl-C or kill never leaves a student's infinite loop running). The
    student's stdin is ``os.devnull``, as in the sandbox."""
    reader = protocol.FrameReader(REQUEST_CAP)
    while True:
        chunk = os.read(0, 1 << 20)
        if not chunk:
            raise SystemExit("no request on stdin")
        frames = reader.feed(chunk)
        if frames:
            break
    watched = os.dup(0)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    threading.Thread(target=_watch_parent, args=(watched,), daemon=True).start()
    return protocol.loads(frames[0], REQUEST_CAP)


_RUN_FOLDER: list[str] = []  # the parent's temp folder of this run, removed if the parent dies


def _watch_parent(fd: int) -> None:
    try:
        while os.read(fd, 1 << 10):
            pass
    except OSError:
        pass
    for folder in _RUN_FOLDER:  # the parent cannot remove it any more
        if os.path.basename(folder).startswith("grader-portable-"):
            import shutil  # noqa: PLC0415

            shutil.rmtree(folder, ignore_errors=True)
    os._exit(EXIT_SETUP)


def preload(workdir: str, groups: list[list[dict]]) -> None:
    """Import torch (one thread, as in the zygote) and the preloaded packages the submission names."""
    import torch  # noqa: PLC0415

    torch.set_num_threads(1)
    text = ""
    for folder, _, names in os.walk(workdir):
        for name in names:
            if name.endswith(".py"):
                try:
                    with open(os.path.join(folder, name), encoding="utf-8", errors="replace") as handle:
                        text += handle.read(1 << 20)
                except OSError:
                    pass
    for name in PRELOADED:
        if re.search(rf"\b{re.escape(name.split('.')[0])}\b", text):
            try:
                importlib.import_module(name)
            except Exception:  # noqa: BLE001 - a speed-up only
                pass
    if any(call.get("kind") == "train_gan" for group in groups for call in group):
        importlib.import_module("grader.sandbox.workhouse_calls")


def apply_rlimits(job: Job) -> list[str]:
    """rlimits where the platform has them; notes on what is not enforced here."""
    if resource is None:
        return ["no rlimits on this platform: memory_mib, file_size_mib, open_files and CPU "
                "times are not enforced (wall times are)"]
    limits, mib, notes = job.limits, 1 << 20, []
    wanted = [("RLIMIT_DATA", limits.memory_mib * mib + rlimits.data_bytes(), "memory_mib"),
              ("RLIMIT_FSIZE", limits.file_size_mib * mib, "file_size_mib"),
              ("RLIMIT_NOFILE", limits.open_files, "open_files"), ("RLIMIT_CORE", 0, "")]
    for name, value, what in wanted:
        try:
            resource.setrlimit(getattr(resource, name), (value, value))
        except (AttributeError, ValueError, OSError) as error:
            if what:
                notes.append(f"{what} not enforced ({name}: {error})")
    if sys.platform == "darwin":
        notes.append("memory_mib is set as RLIMIT_DATA, which macOS may not enforce")
    try:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        used = usage.ru_utime + usage.ru_stime  # importing torch: not the submission's time
        resource.setrlimit(resource.RLIMIT_CPU, (math.ceil(used + job.load_cpu_s()),
                                                 math.ceil(used + rlimits.total_cpu_s(job))))
    except (ValueError, OSError) as error:
        notes.append(f"CPU times not enforced (RLIMIT_CPU: {error})")
    if hasattr(signal, "SIGXFSZ"):
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writes past the size fail with EFBIG
    return notes


# ---------------------------------------------------------------------------------- the run
def main() -> None:
    """Never returns."""
    try:
        request = read_request()
        limits = Limits.from_dict(request["limits"])
        job = Job(limits=limits, workdir=request["workdir"], entry=request["entry"], mode=request["mode"],
                  groups=request["groups"], isolation="portable", nonce=request["nonce"],
                  inside_workdir=request["workdir"])
        _RUN_FOLDER.append(os.path.dirname(os.path.abspath(job.workdir)))
        channel = Channel(_FRAMES_FD, job.nonce, frame_cap(limits))
        preload(job.workdir, job.groups)
        from grader.sandbox import calls, loader, tamper  # noqa: PLC0415 - torch is loaded by now

        tamper.record()

        notes = apply_rlimits(job)
        if not hasattr(signal, "setitimer"):
            notes.append("no signal.setitimer on this platform: no time budget per top-level "
                         "statement (a slow one makes the whole load time out)")
        cap = limits.output_kib << 10
        outputs = (Output(channel, "out", cap, 1), Output(channel, "err", cap, 2))
        sys.stdout = sys.__stdout__ = _text_stream(outputs[0])
        sys.stderr = sys.__stderr__ = _text_stream(outputs[1])
    except BaseException:  # noqa: BLE001 - the parent reads this on stderr
        traceback.print_exc()
        os._exit(EXIT_SETUP)
    channel.send("ready", notes=notes)
    try:
        namespace, load_notes = loader.load_module(
            job.workdir, job.entry, job.mode, limits.statement_wall_s, import_timeout_s=limits.import_wall_s)
    except loader.SubmissionLoadError as error:
        _finish(channel, outputs, "load_error", message=_text(error))
    except BaseException as error:  # noqa: BLE001
        _finish(channel, outputs, "load_error", message=runner.describe_exception(error, job.inside_workdir))
    try:
        if rlimits is not None:
            rlimits.lift_load_cpu(job)
        fallback = getattr(load_notes, "fallback", None)
        channel.send("loaded", notes=[_text(note) for note in load_notes],
                     fallback=[_text(part) for part in fallback] if fallback else None,
                     tampering=tamper.since_baseline())
        for group in job.groups:
            for call in group:
                runner.one_call(job, channel, calls.execute_call, namespace, call,
                                rlimits.set_call_cpu if rlimits is not None else None)
    except BaseException as error:  # noqa: BLE001 - the parent marks the calls left "crashed"
        _finish(channel, outputs, "child_error", message=f"{type(error).__name__}: {_text(error)}")
    _finish(channel, outputs, "finished")


def _finish(channel: Channel, outputs: tuple[Output, Output], kind: str, **fields: object) -> None:
    _flush()
    for output in outputs:
        try:
            output.report()
        except BaseException:  # noqa: BLE001
            pass
    try:
        channel.send(kind, **fields)
    finally:
        os._exit(0)  # no atexit handlers or student threads: the run is over


if __name__ == "__main__":
    main()
