"""The supervisor S: one per submission, forked by a zygote; our code only, never student code.

S enters the namespaces (``namespaces``), has the zygote write its id maps, builds the new root
(``filesystem``), forks P1 (PID 1 of the new PID namespace, see ``inside``), has the zygote put
P1 in the slot's cgroups, then watches it from outside the PID namespace, where no student
process can see, signal or trace it:

- it reads P1's frames, drops those without the run's nonce (forgeries), and checks their
  order against the plan: ``ready``, then ``loaded`` (or ``load_error``), then for each call in
  order an optional ``begin`` and exactly one outcome; anything else stops the run;
- it measures every duration itself and enforces every wall time again (the load, each call,
  the silence between calls) with a grace period over P1's own timers; past one it kills P1,
  which kills every process of the submission;
- it keeps ``output_kib`` of stdout and of stderr and counts the rest;
- it streams each call's outcome to the grader as soon as it is known, then an ``end`` frame.

If the zygote dies (the grader is gone), S kills P1 and exits.
"""
from __future__ import annotations

import os
import select
import signal
import tempfile
import time

from grader.sandbox import filesystem, inside, namespaces, protocol
from grader.sandbox.job import EXIT_CPU, EXIT_SETUP, Job
from grader.sandbox.results import NOT_RUN_REASONS, Capture, load_fallback, suspected_tampering

SETUP_S = 20.0  # building the sandbox, up to P1's "ready"
GRACE_S = 2.0  # on top of P1's own timers, before S stops the run itself
DRAIN_S = 1.0  # reading the last output after P1 died
TERMINAL = ("result", "error", "crashed", "timeout", "not_run")


def run_supervisor(job: Job, sync_fd: int, alive_fd: int, out_fd: int) -> None:
    """Never returns: the process exits when the run is over."""
    copy_dir = None
    p1 = None
    try:
        sync = _Sync(sync_fd)
        if job.isolation == "namespaces":
            if job.as_root:
                os.setgroups([])
                namespaces.unshare_mount_namespace(job)
                filesystem.build_root(job)
            namespaces.unshare_all(job)
            sync.ask({"type": "maps"})
            namespaces.become_ns_root(job)
            if not job.as_root:
                namespaces.make_mounts_private(job)
                filesystem.build_root(job)
        else:
            copy_dir = tempfile.mkdtemp(prefix="grader-unsandboxed-")
            job.inside_workdir = os.path.join(copy_dir, "submission")
            os.mkdir(job.inside_workdir)
            filesystem.private_copy(job, job.inside_workdir)
        result_r, result_w = os.pipe()
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        go_r, go_w = os.pipe()
        p1 = os.fork()
        if p1 == 0:
            try:
                for fd in (result_r, out_r, err_r, go_w, sync_fd, alive_fd, out_fd):
                    os.close(fd)
                if job.isolation != "namespaces":
                    os.setsid()
                inside.p1_main(job, result_w, out_w, err_w, go_r)
            finally:
                os._exit(EXIT_SETUP)
        for fd in (result_w, out_w, err_w, go_r):
            os.close(fd)
        sync.ask({"type": "p1", "pid": p1})
        os.write(go_w, b"g")
        os.close(go_w)
        watch = Watch(job, p1, out_fd)
        watch.run(result_r, out_r, err_r, alive_fd)
    except BaseException as error:  # noqa: BLE001 - S reports whatever happened
        try:
            protocol.write_frame(out_fd, {
                "type": "end", "s": job.session, "status": "sandbox_error",
                "message": f"{type(error).__name__}: {error}", "notes": job.notes,
                "stdout": "", "stderr": "", "output_dropped_bytes": 0,
            })
        except BaseException:  # noqa: BLE001
            pass
    finally:
        if p1:
            _kill(job, p1)
        if copy_dir is not None:
            import shutil

            shutil.rmtree(copy_dir, ignore_errors=True)
        os._exit(0)


def _kill(job: Job, p1: int) -> None:
    try:
        if job.isolation == "namespaces":
            os.kill(p1, signal.SIGKILL)  # PID 1: the kernel kills the whole namespace with it
        else:
            os.killpg(p1, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


class _Sync:
    """Requests to the zygote (outside, root): id maps, cgroups."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.reader = protocol.FrameReader(1 << 16)

    def ask(self, message: dict) -> None:
        protocol.write_frame(self.fd, message)
        reply = protocol.read_message(self.fd, self.reader, time.monotonic() + SETUP_S)
        if reply is None or reply.get("type") != "ok":
            problem = reply.get("message") if reply else "the zygote went away"
            raise RuntimeError(f"the zygote could not do {message['type']!r}: {problem}")


class Watch:
    """S's view of the run: the plan, what came back, and the deadlines."""

    def __init__(self, job: Job, p1: int, out_fd: int) -> None:
        self.job, self.p1, self.out_fd = job, p1, out_fd
        self.calls = job.calls()
        self.next = 0  # index of the call whose outcome comes next
        self.begun_at: float | None = None
        self.phase = "setup"
        now = time.monotonic()
        self.deadline = now + SETUP_S
        self.phase_started = now
        self.status: str | None = None  # final status, once the run stops
        self.message = ""
        self.notes = list(job.notes)
        self.forged = 0
        cap = job.limits.output_kib << 10
        self.stdout, self.stderr = Capture(cap), Capture(cap)
        self.reader = protocol.FrameReader(inside.frame_cap(job))
        self.p1_status: int | None = None
        self.fallback: tuple[str, str] | None = None  # the load's fallback to the definitions
        self.tampering: list[str] = []  # what P1 says the top level replaced (TA information only)

    # ------------------------------------------------------------------------------ the loop
    def run(self, result_fd: int, out_fd: int, err_fd: int, alive_fd: int) -> None:
        pidfd = os.pidfd_open(self.p1)
        poller = select.poll()
        for fd in (result_fd, out_fd, err_fd, alive_fd, pidfd):
            poller.register(fd, select.POLLIN)
        open_fds = {result_fd, out_fd, err_fd}
        while self.status is None:
            timeout_ms = max(0, int((self.deadline - time.monotonic()) * 1000) + 1)
            for fd, _ in poller.poll(timeout_ms):
                if fd == pidfd:
                    continue  # handled after the pipes: read what P1 wrote before it died
                if fd == alive_fd:
                    self.stop("sandbox_error", "the zygote went away (stopped by the grader, or the grader died)")
                    break
                chunk = os.read(fd, 1 << 20)
                if not chunk:
                    poller.unregister(fd)
                    open_fds.discard(fd)
                    continue
                if fd == result_fd:
                    self.on_bytes(chunk)
                else:
                    (self.stdout if fd == out_fd else self.stderr).add(chunk)
                if self.status is not None:
                    break
            if self.status is None and _exited(pidfd):
                self._drain(result_fd, open_fds)
                if self.status is None:
                    _, self.p1_status = os.waitpid(self.p1, 0)
                    self.on_p1_exit(self.p1_status)
            if self.status is None and time.monotonic() >= self.deadline:
                self.on_deadline()
        _kill(self.job, self.p1)
        if self.p1_status is None:
            _, self.p1_status = os.waitpid(self.p1, 0)
        self._drain_output(out_fd, err_fd, open_fds)
        self.finish()

    def _drain(self, result_fd: int, open_fds: set[int]) -> None:
        os.set_blocking(result_fd, False)
        while self.status is None and result_fd in open_fds:
            try:
                chunk = os.read(result_fd, 1 << 20)
            except BlockingIOError:
                return
            if not chunk:
                open_fds.discard(result_fd)
                return
            self.on_bytes(chunk)

    def _drain_output(self, out_fd: int, err_fd: int, open_fds: set[int]) -> None:
        """After P1's death every writer dies with it (in namespaces): read to the end."""
        end = time.monotonic() + DRAIN_S
        streams = {out_fd: self.stdout, err_fd: self.stderr}
        pending = [fd for fd in (out_fd, err_fd) if fd in open_fds]
        while pending and time.monotonic() < end:
            ready, _, _ = select.select(pending, [], [], max(0.0, end - time.monotonic()))
            for fd in ready:
                chunk = os.read(fd, 1 << 20)
                if chunk:
                    streams[fd].add(chunk)
                else:
                    pending.remove(fd)

    # ---------------------------------------------------------------------------- the events
    def on_bytes(self, chunk: bytes) -> None:
        try:
            frames = self.reader.feed(chunk)
        except protocol.TooLarge as error:
            self.violation(f"a message of {error} (Limits.result_mib)")
            return
        for data in frames:
            try:
                message = protocol.loads_raw(data)
            except protocol.ProtocolError as error:
                self.violation(f"malformed data ({error})")
                return
            if message.get("n") != self.job.nonce:
                self.forged += 1
                continue
            self.on_message(message)
            if self.status is not None:
                return

    def on_message(self, message: dict) -> None:
        kind = message.get("type")
        now = time.monotonic()
        if self.phase == "setup":
            if kind == "ready":
                notes = message.get("notes")
                if isinstance(notes, list):
                    self.notes.extend(_str(note) for note in notes[:10] if note not in self.notes)
                self.phase, self.phase_started = "load", now
                self.deadline = now + self.job.load_wall_s()
            elif kind == "setup_error":
                self.stop("sandbox_error", f"building the sandbox failed: {_str(message.get('message'))}")
            else:
                self.violation(f"an unexpected {kind!r} message before the sandbox was ready")
        elif self.phase == "load":
            if kind == "loaded":
                notes = message.get("notes")
                if isinstance(notes, list):
                    self.notes.extend(_str(note) for note in notes[:50])
                self.fallback = load_fallback(message.get("fallback"))
                self.tampering = suspected_tampering(message.get("tampering"))
                self.phase = "calls"
                self._arm(now)
            elif kind == "load_error":
                self.stop("load_error", _str(message.get("message")))
            else:
                self.violation(f"an unexpected {kind!r} message while the module was loading")
        elif self.phase == "calls":
            if kind == "finished":
                self.stop("ok", "")
            elif kind == "p1_error":
                self.fail_rest("crashed", f"the sandbox failed: {_str(message.get('message'))}")
                self.stop("ok", "")
            elif kind in ("begin", *TERMINAL) and self.next < len(self.calls) \
                    and message.get("id") == self.calls[self.next]["id"]:
                if kind == "begin":
                    if self.begun_at is not None:
                        self.violation("a second 'begin' for the same call")
                        return
                    self.begun_at = now
                else:
                    self.record(kind, message, now)
                self._arm(now)
            else:
                self.violation(f"an unexpected {kind!r} message for call {_str(message.get('id'))!r}")

    def _arm(self, now: float) -> None:
        """The next deadline: the running call's, or the silence allowed between calls."""
        if self.begun_at is not None:
            wall = self.job.call_wall_s(self.calls[self.next])
            self.deadline = self.begun_at + wall + GRACE_S
        else:
            self.deadline = now + inside.IDLE_S + GRACE_S

    def record(self, kind: str, message: dict, now: float) -> None:
        call = self.calls[self.next]
        duration = now - self.begun_at if self.begun_at is not None else 0.0
        frame = {"type": "call", "s": self.job.session, "id": call["id"], "status": "ok" if kind == "result" else kind,
                 "duration_s": round(duration, 6), "error": "", "value": None}
        if kind == "result":
            frame["value"] = message.get("value")
        else:
            frame["error"] = _str(message.get("error"))[:4000]
        protocol.write_all(self.out_fd, protocol.frame(protocol.dumps_raw(frame)))
        self.next += 1
        self.begun_at = None

    def fail_rest(self, status: str, error: str) -> None:
        """The call that comes next gets ``status``, the later ones "not_run"."""
        if self.next >= len(self.calls):
            return
        first = self.calls[self.next]["id"]
        now = time.monotonic()
        self.record(status, {"error": error}, now)
        while self.next < len(self.calls):
            self.record("not_run", {"error": f"not run: the sandbox stopped at call {first}"}, now)

    def violation(self, what: str) -> None:
        error = f"the sandbox sent {what} on the results channel"
        if self.phase == "calls":
            self.fail_rest("crashed", error)
            self.stop("ok", "")
        else:
            self.stop("crashed", error)

    def on_deadline(self) -> None:
        if self.phase == "setup":
            self.stop("sandbox_error", f"the sandbox was not ready after {SETUP_S:g} s")
        elif self.phase == "load":
            self.stop("timeout", f"loading the module ran past {self.job.load_wall_s():g} s")
        elif self.begun_at is not None:
            wall = self.job.call_wall_s(self.calls[self.next])
            self.fail_rest("timeout", f"exceeded {wall:g} s wall time")
            self.stop("ok", "")
        else:
            self.fail_rest("crashed", f"the sandbox stopped responding between calls for {inside.IDLE_S:g} s")
            self.stop("ok", "")

    def on_p1_exit(self, status: int) -> None:
        how = _describe_exit(status)
        if self.phase == "setup":
            tail = self.stderr.text().strip().splitlines()[-3:]
            self.stop("sandbox_error", f"the sandbox's PID 1 died while starting ({how})"
                      + (": " + " | ".join(tail) if tail else ""))
        elif self.phase == "load":
            if os.WIFEXITED(status) and os.WEXITSTATUS(status) == EXIT_CPU:
                self.stop("timeout", f"loading the module used more than {self.job.load_cpu_s():g} s of CPU time")
            else:
                self.stop("crashed", f"the module's top level ended the sandbox ({how})")
        else:
            self.fail_rest("crashed", f"the sandbox's PID 1 died ({how})")
            self.stop("ok", "")

    def stop(self, status: str, message: str) -> None:
        if self.status is None:
            self.status, self.message = status, message

    def finish(self) -> None:
        if self.status in ("ok",):
            self.fail_rest("not_run", "not run: the sandbox stopped early")
        elif self.next < len(self.calls):
            reason = {**NOT_RUN_REASONS, "sandbox_error": f"the sandbox stopped: {self.message}"}.get(
                self.status or "", "the run stopped")
            now = time.monotonic()
            while self.next < len(self.calls):
                self.record("not_run", {"error": f"not run: {reason}"}, now)
        if self.forged:
            self.notes.append(f"dropped {self.forged} message(s) on the results channel that did not "
                              "come from the harness (forged?)")
        protocol.write_frame(self.out_fd, {
            "type": "end", "s": self.job.session, "status": self.status, "message": self.message, "notes": self.notes,
            "load_fallback": list(self.fallback) if self.fallback else None, "tampering": self.tampering,
            "stdout": self.stdout.text(), "stderr": self.stderr.text(),
            "output_dropped_bytes": self.stdout.dropped + self.stderr.dropped,
        })


def _exited(pidfd: int) -> bool:
    return bool(select.select([pidfd], [], [], 0)[0])


def _describe_exit(status: int) -> str:
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        try:
            return f"killed by {signal.Signals(sig).name}"
        except ValueError:
            return f"killed by signal {sig}"
    return f"exit status {os.WEXITSTATUS(status)}"


def _str(value: object) -> str:
    return value if isinstance(value, str) else repr(value)[:200]
