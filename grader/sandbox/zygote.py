"""A zygote: a warm interpreter that forks one supervisor per submission.

Started by ``SandboxPool`` as ``python -m grader.sandbox.zygote --ctrl-fd N --result-fd M
--isolation namespaces``. It imports torch, numpy and the in-sandbox harness once (never
``reference`` or anything holding expected values: it checks), pins torch to one thread so that
forking is safe, then serves requests one at a time:

    grader --ctrl (frames: {"type": "run", ...})--> zygote --fork--> supervisor S --fork--> P1
    grader <--result (frames: "ready", then per run: S's "call"... "end", then "done")--

Every frame of a run carries the run's ``session`` (a fresh random token the grader sends with
each request), so that the grader can tell a frame of this run from anything left over.

For each run it also does what needs the host's root from outside: writing S's uid/gid maps and
moving P1 into the slot's cgroups. When the grader goes away (end of file on the control pipe)
it exits; S sees it go and kills its sandbox.
"""
from __future__ import annotations

import argparse
import gc
import os
import secrets
import select
import signal
import socket
import sys
import time

os.environ.setdefault("MPLBACKEND", "Agg")  # before matplotlib is imported: never a GUI backend

import numpy  # noqa: F401,E402 - preloaded for the sandboxes
import torch  # noqa: E402

from grader.sandbox.job import PRELOADED  # noqa: E402

from grader.sandbox import cgroups, inside, namespaces, protocol, rlimits, supervisor, tamper  # noqa: F401
from grader.sandbox.job import SANDBOX_ID_BASE, Job
from grader.sandbox.limits import Limits

CONTROL_CAP = 1 << 30  # requests come from the grader (trusted): arrays of a check's inputs
FORBIDDEN_MODULES = ("reference",)
ABANDON_S = 2.0  # how long S may take to kill its sandbox once the grader is gone


class Zygote:
    def __init__(self, ctrl_fd: int, result_fd: int, isolation: str) -> None:
        self.ctrl_fd, self.result_fd, self.isolation = ctrl_fd, result_fd, isolation
        self.as_root = os.geteuid() == 0
        if self.as_root:
            self.host_uid = self.host_gid = SANDBOX_ID_BASE + os.getpid()
        else:
            self.host_uid, self.host_gid = os.geteuid(), os.getegid()
        self.cgroups = cgroups.SlotCgroups(f"{cgroups.PREFIX}{os.getpid()}")
        self.reader = protocol.FrameReader(CONTROL_CAP)
        self.active: tuple[int, int] | None = None  # (S's pid, alive_w) while a run is on

    def serve(self) -> None:
        notes = []
        if not self.cgroups.available:
            notes.append(f"no cgroup limits ({self.cgroups.problem}): total_memory_mib, "
                         "cpu_shares and the pids cgroup are not enforced")
        if self.isolation == "namespaces" and not self.as_root:
            notes.append("not root: the sandbox runs as the grader's own uid, so max_processes "
                         "(RLIMIT_NPROC) is not enforced")
        try:
            protocol.write_frame(self.result_fd, {"type": "ready", "pid": os.getpid(), "notes": notes})
        except BrokenPipeError:
            return  # the grader went away while this zygote started (e.g. a self-check that failed early)
        try:
            while True:
                request = protocol.read_message(self.ctrl_fd, self.reader, None)
                if request is None:
                    return
                if request.get("type") == "run":
                    self.run(request)
        finally:
            self._abandon_run()
            self.cgroups.remove()

    def _abandon_run(self) -> None:
        """The grader is gone in the middle of a run: S kills its sandbox when ``alive_w``
        closes; reap S (or kill it), then kill whatever is left in the slot's cgroups."""
        if self.active is None:
            return
        pid, alive_w = self.active
        self.active = None
        os.close(alive_w)
        deadline = time.monotonic() + ABANDON_S
        while True:
            done, _ = os.waitpid(pid, os.WNOHANG)
            if done or time.monotonic() > deadline:
                break
            time.sleep(0.01)
        if not done:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        if self.cgroups.available:
            self._kill_leftovers()

    def run(self, request: dict) -> None:
        job = Job(
            limits=Limits.from_dict(request["limits"]), workdir=request["workdir"],
            entry=request["entry"], mode=request["mode"], groups=request["groups"],
            isolation=self.isolation, nonce=secrets.token_hex(16), host_uid=self.host_uid,
            as_root=self.as_root, harness_data_bytes=rlimits.data_bytes(), session=str(request["session"]),
        )
        if self.cgroups.available:
            self.cgroups.configure(job)
            oom_before = self.cgroups.oom_kills()
        ours, theirs = socket.socketpair()
        alive_r, alive_w = os.pipe()
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            try:
                ours.close()
                os.close(alive_w)
                os.close(self.ctrl_fd)
                supervisor.run_supervisor(job, theirs.fileno(), alive_r, self.result_fd)
            finally:
                os._exit(0)
        theirs.close()
        os.close(alive_r)
        self.active = (pid, alive_w)
        try:
            status = self._serve_supervisor(pid, ours.fileno())
        finally:
            ours.close()
        self.active = None
        os.close(alive_w)
        leftover = 0
        oom_kills = 0
        if self.cgroups.available:
            leftover = self._kill_leftovers()
            oom_kills = self.cgroups.oom_kills() - oom_before
        protocol.write_frame(self.result_fd, {
            "type": "done", "s": job.session, "exit": status, "oom_kills": oom_kills, "leftover_processes": leftover,
        })

    def _serve_supervisor(self, pid: int, sync_fd: int) -> int:
        """Answer S's requests until it exits; its wait status."""
        pidfd = os.pidfd_open(pid)
        reader = protocol.FrameReader(1 << 16)
        poller = select.poll()
        for fd in (sync_fd, pidfd, self.ctrl_fd):
            poller.register(fd, select.POLLIN)
        try:
            while True:
                events = dict(poller.poll())
                if self.ctrl_fd in events:
                    if not os.read(self.ctrl_fd, 1):  # the grader is gone: so are we
                        raise SystemExit(0)  # serve() abandons the run
                if sync_fd in events:
                    chunk = os.read(sync_fd, 1 << 16)
                    if chunk:
                        for data in reader.feed(chunk):
                            self._answer(pid, sync_fd, protocol.loads(data))
                    else:
                        poller.unregister(sync_fd)
                if pidfd in events:
                    _, status = os.waitpid(pid, 0)
                    return status
        finally:
            os.close(pidfd)

    def _answer(self, pid: int, sync_fd: int, message: dict) -> None:
        try:
            if message.get("type") == "maps":
                namespaces.write_id_maps(pid, self.host_uid, self.host_gid)
            elif message.get("type") == "p1" and self.cgroups.available:
                self.cgroups.add(int(message["pid"]))
            reply = {"type": "ok"}
        except (OSError, ValueError, KeyError) as error:
            reply = {"type": "fail", "message": str(error)}
        protocol.write_frame(sync_fd, reply)

    def _kill_leftovers(self) -> int:
        """Every process of the run dies with P1; kill any that did not (there should be none)."""
        tasks = self.cgroups.tasks()
        for _ in range(50):
            if not tasks:
                break
            for task in tasks:
                try:
                    os.kill(task, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.01)
            tasks = self.cgroups.tasks()
        return len(tasks)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ctrl-fd", type=int, required=True)
    parser.add_argument("--result-fd", type=int, required=True)
    parser.add_argument("--isolation", choices=("namespaces", "none"), required=True)
    parser.add_argument("--no-workhouse", action="store_true",
                        help="do not preload train_gan's call module (a pool that never runs train_gan)")
    parser.add_argument("--no-preload", action="store_true",
                        help="do not preload the optional packages (one submission: it imports what it uses)")
    args = parser.parse_args(argv)
    if not args.no_preload:
        for name in PRELOADED:  # a package that fails to import is simply not preloaded
            try:
                __import__(name)
            except Exception:  # noqa: BLE001 - optional speed-up only
                pass
    if not args.no_workhouse:
        # train_gan's call module: importing it builds one Adam, which imports torch._dynamo
        # (~0.8 s) once here instead of in every submission's call process
        from grader.sandbox import workhouse_calls  # noqa: F401
    torch.set_num_threads(1)
    torch.set_num_interop_threads(1)
    leaked = [name for name in sys.modules if name.split(".")[0] in FORBIDDEN_MODULES]
    if leaked:
        raise SystemExit(f"the zygote imported {', '.join(sorted(leaked))}: expected values would "
                         "be inside every sandbox; refusing to start")
    tamper.record()  # every harness module is imported: the state student code must not change
    gc.freeze()  # the forked processes' collections leave these objects (and their pages) alone
    Zygote(args.ctrl_fd, args.result_fd, args.isolation).serve()


if __name__ == "__main__":
    main()
