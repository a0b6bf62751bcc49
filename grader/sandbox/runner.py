"""Running one call next to student code: the code the sandbox's call processes (``inside``) and
the portable child (``portable_child``) share, so that every fix lands once.

A call's outcome is one frame on the channel: ``begin``, then exactly one of ``result`` (the
encoded value), ``error`` (the student's exception, a missing function, a value that cannot
leave) or ``crashed`` (``sys.exit``, a result over ``Limits.result_mib``). Nothing here decides a
verdict: the grader judges the raw values outside.

Imported before any student code runs; what it uses is bound at import (a private copy of the
builtins, ``os``/``traceback`` functions), so naive monkeypatching of those modules by the
student's top level does not reach it. (A determined module can still reach this one through
``sys.modules``: that is why nothing it says is trusted.)
"""
from __future__ import annotations

import builtins as _builtins_module

__builtins__ = dict(_builtins_module.__dict__)  # noqa: A001 - a private copy (see the docstring)

import os  # noqa: E402
import sys  # noqa: E402
import traceback  # noqa: E402
from typing import Callable, Protocol  # noqa: E402

from grader.sandbox import protocol  # noqa: E402
from grader.sandbox.job import Job  # noqa: E402
from grader.sandbox.limits import Limits  # noqa: E402

FRAME_OVERHEAD = 64 << 10  # room for the keys around a result, on top of result_mib
TRACEBACK_LINES = 3  # frames of the student's own files kept in an error message
MESSAGE_CHARS = 2000  # the head of an exception's message ("Type: text")

_extract_tb, _relpath, _join = traceback.extract_tb, os.path.relpath, os.path.join
_dumps, _frame, _TooLarge, _ProtocolError = protocol.dumps, protocol.frame, protocol.TooLarge, protocol.ProtocolError


class Channel(Protocol):
    """Where a call's frames go: ``send`` encodes a message (adding its type and the run's
    nonce), ``relay`` writes already-encoded message bytes as one frame."""

    def send(self, kind: str, **fields: object) -> None: ...

    def relay(self, data: bytes) -> None: ...


def frame_cap(limits: Limits) -> int:
    """The largest frame a call may send: ``result_mib`` and the keys around it."""
    return (limits.result_mib << 20) + FRAME_OVERHEAD


def text(value: object) -> str:
    """``str(value)``, or a placeholder when the student's ``__str__`` raises."""
    try:
        return str(value)
    except BaseException:  # noqa: BLE001 - a student's __str__
        return "<unprintable>"


def describe_exception(error: BaseException, workdir: str) -> str:
    """``"ZeroDivisionError: division by zero"`` and the last lines of the student's files
    (those under ``workdir``), paths relative to it."""
    try:
        message = text(error)
        head = f"{type(error).__name__}: {message}" if message else type(error).__name__
        if len(head) > MESSAGE_CHARS:
            head = head[:MESSAGE_CHARS - 3] + "..."
        prefix = _join(workdir, "")
        frames = [frame for frame in _extract_tb(error.__traceback__)
                  if frame.filename.startswith(prefix)][-TRACEBACK_LINES:]
        lines = [f'  File "{_relpath(frame.filename, workdir)}", line {frame.lineno}, in {frame.name}'
                 + (f"\n    {frame.line.strip()}" if frame.line else "") for frame in frames]
        return "\n".join([head, *lines])
    except BaseException:  # noqa: BLE001 - MemoryError while formatting, a hostile __str__
        return "an exception that could not be described"


def flush_streams() -> None:
    """Flush the student's streams so that their output precedes the call's outcome."""
    for stream in (sys.__stdout__, sys.__stderr__, sys.stdout, sys.stderr):
        try:
            stream.flush()
        except BaseException:  # noqa: BLE001
            pass


def one_call(job: Job, channel: Channel, execute_call: Callable[[dict, dict], dict], namespace: dict,
             call: dict, set_cpu: Callable[[float], None] | None) -> None:
    """Run ``call`` against the student's ``namespace`` and send its frames (see the module
    docstring). ``set_cpu(seconds)`` limits the call's CPU time where the platform can."""
    call_id = call["id"]
    channel.send("begin", id=call_id)
    if set_cpu is not None:
        try:
            set_cpu(job.call_cpu_s(call))
        except BaseException as error:  # noqa: BLE001 - the student's top level broke something
            channel.send("error", id=call_id, error=f"the harness could not limit this call's CPU time: "
                         f"{type(error).__name__} (did the module patch a builtin?)")
            return
    try:
        value = execute_call(namespace, call)
    except SystemExit as error:
        flush_streams()
        code = text(error.code) if error.code is not None else ""
        channel.send("crashed", id=call_id, error=f"called sys.exit({code})")
        return
    except BaseException as error:  # noqa: BLE001 - RecursionError, MemoryError, KeyboardInterrupt...
        flush_streams()
        channel.send("error", id=call_id, error=describe_exception(error, job.inside_workdir))
        return
    flush_streams()
    try:
        data = _dumps({"type": "result", "n": job.nonce, "id": call_id, "value": value},
                      max_bytes=job.limits.result_mib << 20)
    except _TooLarge as error:
        channel.send("crashed", id=call_id, error=f"returned a result of {error} (Limits.result_mib)")
        return
    except _ProtocolError as error:
        channel.send("error", id=call_id, error=f"the result cannot leave the sandbox: {error}")
        return
    except BaseException as error:  # noqa: BLE001 - MemoryError while encoding
        channel.send("error", id=call_id, error=f"the result cannot leave the sandbox: {type(error).__name__}")
        return
    channel.relay(data)
