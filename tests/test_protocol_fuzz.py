"""Property-based fuzz of the grader's side of the sandbox protocol (``SandboxPool._run_on`` /
``_collect`` / ``_call_result``).

The real zygote is replaced by ``FakeZygote``: two ``os.pipe()`` pairs and a thread that reads
the pool's request frame (to learn the run's session token and call ids) and writes a scripted
sequence of frames (or raw bytes, or closes its end: a dying zygote) to the result pipe. No
namespaces, processes or real sandbox are involved, so this runs anywhere.

Per generated script the test checks that ``_run_on``

1. returns (never raises) a result whose ``calls`` are exactly the planned ids, each with a
   status in ``CALL_STATUSES``, and whose every string is valid UTF-8;
2. never gives a call a value from a frame carrying another session's token (such frames carry
   the marker value 424242.0);
3. matches a small model of the protocol: a stream in any unexpected state (wrong or missing
   session, unknown or duplicate call id, a frame out of order, a non-JSON frame, an oversized
   length header, EOF) is a ``sandbox_error`` with every call ``not_run`` and the zygote
   restarted; malformed data inside a well-formed call frame fails that call only
   (``crashed``); data after ``done`` gets the zygote restarted before the next run;
4. grades the NEXT submission on the same fake exactly as a fresh fake grades it alone.

Hand-written cases follow (the [0, 2**64] array, another session's frame, data after ``done``,
each unexpected stream state), then regression tests of the gaps the fuzz found in pool.py.
GRADER_FUZZ_EXAMPLES=N runs N random (not the fixed) examples per scenario shape.
"""
from __future__ import annotations

import json
import math
import os
import re
import select
import threading
import time

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import event as note
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from grader.escape import clean_text
from grader.sandbox import protocol
from grader.sandbox.limits import Limits
from grader.sandbox.pool import MESSAGE_CHARS, SandboxPool
from grader.sandbox.results import CALL_STATUSES, RUN_STATUSES

FOREIGN = 424242.0  # the value every frame of another session carries
SURROGATES = re.compile("[\ud800-\udfff]")
# 40 fixed examples per scenario shape by default (240 in all, a few seconds);
# GRADER_FUZZ_EXAMPLES=1000 for a longer, random search
_EXAMPLES = int(os.environ.get("GRADER_FUZZ_EXAMPLES", "0"))
FUZZ = settings(max_examples=_EXAMPLES or 40, deadline=2000, derandomize=not _EXAMPLES, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.function_scoped_fixture])


# ------------------------------------------------------------------------------- the fake zygote
class _Alive:
    def poll(self) -> None:
        return None


class FakeZygote:
    """What ``SandboxPool._run_on`` uses of ``_Zygote``, serving ``self.script``.

    ``script(request) -> list`` of items: ``bytes`` (written as is: frames are built by the
    caller), ``CLOSE`` (close the result pipe and stop), ``("sleep", s)``, or ``("gate",)``
    (wait until the test sets ``self.gate``)."""

    def __init__(self, script=None) -> None:
        self.process = _Alive()
        self.notes: list[str] = []
        self.restarts = 0
        self.script = script
        self.gate = threading.Event()
        self.requests: list[dict] = []
        self.errors: list[BaseException] = []  # the fake's own failures (a bug in a script)
        self._open()

    def _open(self) -> None:
        ctrl_r, self.ctrl_w = os.pipe()
        self.result_r, result_w = os.pipe()
        self.reader = protocol.FrameReader(1 << 20)
        self.ready = False
        self.idle = threading.Event()
        self.idle.set()
        self._thread = threading.Thread(target=self._serve, args=(ctrl_r, result_w, self.idle), daemon=True)
        self._thread.start()

    def _serve(self, ctrl_r: int, result_w: int | None, idle: threading.Event) -> None:
        """Owns ``ctrl_r`` and ``result_w``: closes them when the pool closes its ends."""
        reader = protocol.FrameReader(1 << 20)
        try:
            while True:
                try:
                    request = protocol.read_message(ctrl_r, reader, None)
                except (OSError, protocol.ProtocolError):
                    return
                if request is None:
                    return
                idle.clear()
                try:
                    self.requests.append(request)
                    for item in self.script(request):
                        if item is CLOSE:
                            os.close(result_w)
                            result_w = None
                            break
                        if isinstance(item, tuple) and item[0] == "gate":
                            self.gate.wait(10)
                            continue
                        if isinstance(item, tuple) and item[0] == "sleep":
                            time.sleep(item[1])
                            continue
                        protocol.write_all(result_w, item)
                except OSError:  # the pool closed its end (BrokenPipeError): the run is over
                    pass
                except Exception as error:  # noqa: BLE001 - reported by ``submit``
                    self.errors.append(error)
                finally:
                    idle.set()
                if result_w is None:
                    return
        finally:
            os.close(ctrl_r)
            if result_w is not None:
                os.close(result_w)

    def wait_ready(self) -> None:
        self.ready = True

    def has_stray_data(self) -> bool:  # as ``_Zygote.has_stray_data``
        if not self.ready:
            return False
        if self.reader.queue or self.reader.pending:
            return True
        return bool(select.select([self.result_r], [], [], 0)[0])

    def stop(self) -> None:
        for name in ("ctrl_w", "result_r"):
            fd = getattr(self, name, None)
            if fd is not None:
                os.close(fd)
                setattr(self, name, None)
        self.gate.set()
        self._thread.join(10)
        assert not self._thread.is_alive(), "the fake zygote's thread did not stop"
        self.gate = threading.Event()

    def restart(self) -> None:
        self.restarts += 1
        self.stop()
        self._open()


CLOSE = object()


class _Pool(SandboxPool):
    def _outer_deadline(self, groups):  # a script that hangs costs 3 s, not minutes
        return time.monotonic() + 3.0


def make_pool() -> SandboxPool:
    pool = _Pool.__new__(_Pool)
    pool.limits = Limits(call_wall_s=1, import_wall_s=1)
    pool.isolation = "namespaces"
    pool._closed = False
    return pool


def submit(pool: SandboxPool, fake: FakeZygote, tmp_path, groups, script):
    fake.script = script
    result = pool._run_on(fake, str(tmp_path), "solution.py", "full", groups)
    fake.gate.set()
    assert fake.idle.wait(10), "the fake zygote is still writing"
    assert not fake.errors, fake.errors
    return result


# ------------------------------------------------------------------------------------- frames
def encode(obj: object) -> bytes:
    """JSON as a sandbox could send it: ASCII, NaN allowed, lone surrogates as ``\\udcff``."""
    return protocol.frame(json.dumps(obj, ensure_ascii=True, allow_nan=True, separators=(",", ":")).encode("ascii"))


def call_frame(session, call_id, value, status="ok", error="", duration=0.25):
    return encode({"type": "call", "s": session, "id": call_id, "status": status, "duration_s": duration,
                   "error": error, "value": value})


def end_frame(session, status="ok", **fields):
    frame = {"type": "end", "s": session, "status": status, "message": "", "notes": [], "stdout": "",
             "stderr": "", "output_dropped_bytes": 0, "load_fallback": None, "tampering": []}
    frame.update(fields)
    return encode(frame)


def done_frame(session, **fields):
    return encode({"type": "done", "s": session, "exit": 0, "oom_kills": 0, "leftover_processes": 0, **fields})


def other_session(session: str) -> str:
    return ("0" if session[0] != "0" else "1") + session[1:]


def arr(a: np.ndarray) -> dict:
    return protocol.to_jsonable(a)


def clean_script(values: dict):
    """A clean, well-ordered run: each planned call ok with ``values[id]``, end, done."""
    def script(request):
        session = request["session"]
        items = [call_frame(session, call_id, protocol.to_jsonable(value)) for call_id, value in values.items()]
        return items + [end_frame(session, stdout="clean"), done_frame(session)]
    return script


# ------------------------------------------------------------------------------- comparisons
def same_value(a: object, b: object, capped: bool = False) -> bool:
    """``a`` is ``b`` (arrays by dtype, shape and content, NaN equal to NaN); ``capped``: a
    string of ``b`` past ``MESSAGE_CHARS`` may come back cut (``_capped`` in pool.py)."""
    if capped and isinstance(a, str) and isinstance(b, str) and len(b) > MESSAGE_CHARS:
        return a == b or a == clean_text(b, MESSAGE_CHARS)
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return (isinstance(a, np.ndarray) and isinstance(b, np.ndarray) and a.dtype == b.dtype
                and a.shape == b.shape and np.array_equal(a, b, equal_nan=a.dtype.kind == "f"))
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same_value(a[k], b[k], capped) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(same_value(x, y, capped) for x, y in zip(a, b))
    if isinstance(a, float):
        return (math.isnan(a) and math.isnan(b)) or a == b
    return a == b


def strings_of(value: object):
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from strings_of(key)
            yield from strings_of(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from strings_of(item)


def contains_foreign(value: object) -> bool:
    if isinstance(value, np.ndarray):
        return value.dtype.kind == "f" and bool(np.any(value == FOREIGN))
    if isinstance(value, float):
        return value == FOREIGN
    if isinstance(value, dict):
        return any(contains_foreign(v) for v in value.values())
    if isinstance(value, list):
        return any(contains_foreign(v) for v in value)
    return False


def check_well_formed(result, ids) -> None:
    """Properties (1) and (2): whatever the stream held."""
    assert sorted(result.calls) == sorted(ids)
    assert result.status in RUN_STATUSES
    texts = [result.status, result.message, result.stdout, result.stderr, *result.notes,
             *result.suspected_tampering, *(result.load_fallback or ())]
    for call_id, call in result.calls.items():
        assert call.id == call_id
        assert call.status in CALL_STATUSES
        assert isinstance(call.error, str)
        assert isinstance(call.duration_s, float) and math.isfinite(call.duration_s)
        assert (call.value is not None) == (call.status == "ok")
        if call.value is not None:
            assert isinstance(call.value, dict)
            assert not contains_foreign(call.value), f"call {call_id} got another session's value"
        texts += [call.status, call.error, *strings_of(call.value)]
    for text in texts:
        assert isinstance(text, str)
        text.encode("utf-8")  # raises on a lone surrogate
    assert type(result.output_dropped_bytes) is int and result.output_dropped_bytes >= 0
    assert result.load_fallback is None or (
        len(result.load_fallback) == 2 and result.load_fallback[0] in ("timeout", "crashed"))


def same_result(a, b) -> bool:
    if (a.status, a.message, a.stdout, a.stderr, a.notes, a.load_fallback) != (
            b.status, b.message, b.stdout, b.stderr, b.notes, b.load_fallback):
        return False
    if a.calls.keys() != b.calls.keys():
        return False
    return all((x.status, x.error, x.duration_s) == (y.status, y.error, y.duration_s) and same_value(x.value, y.value)
               for x, y in ((a.calls[k], b.calls[k]) for k in a.calls))


# ------------------------------------------------------------------------------- strategies
def _without_surrogates(text: str) -> str:
    return SURROGATES.sub("\ufffd", text)


def _decoded(value: object) -> object:
    """What the pool should make of a valid plain value: lone surrogates become U+FFFD."""
    if isinstance(value, str):
        return _without_surrogates(value)
    if isinstance(value, dict):
        return {_without_surrogates(k): _decoded(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_decoded(v) for v in value]
    return value


nasty_text = st.one_of(
    st.text(max_size=12),
    st.sampled_from(["\udcff", "a\ud800b", "\udfff\ud800", "é\x00\u2028", "\U0001f600", ""]),
    st.builds(lambda n: "x" * n, st.sampled_from([3999, 4001, 10000])),
)
keys = st.one_of(st.text(max_size=6), st.sampled_from(["\udcff", "k\ud800"])).filter(lambda k: k != "__ndarray__")
plain = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6), st.sampled_from([10**30, -(10**40)]),
              st.floats(-1000, 1000, allow_nan=False) | st.sampled_from([math.nan, math.inf, -math.inf, -0.0]),
              nasty_text),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(keys, children, max_size=3),
    max_leaves=8,
)


@st.composite
def arrays(draw):
    dtype = draw(st.sampled_from(protocol.ALLOWED_DTYPES))
    shape = draw(st.sampled_from([(), (0,), (3,), (2, 2), (0, 3), (1, 1, 2)]))
    if dtype in ("float64", "float32"):
        elements = st.floats(-1000, 1000, width=32 if dtype == "float32" else 64) | st.sampled_from(
            [math.nan, math.inf, -math.inf])
    elif dtype == "int64":
        elements = st.integers(-(2**63), 2**63 - 1)
    else:
        elements = st.booleans()
    return draw(hnp.arrays(np.dtype(dtype), shape, elements=elements))


@st.composite
def valid_values(draw):
    """(what is sent, what the call's value must be)."""
    fields = draw(st.dictionaries(keys, arrays() | plain, max_size=3))
    if draw(st.booleans()):
        fields["value"] = draw(arrays())
    sent = {key: (arr(v) if isinstance(v, np.ndarray) else v) for key, v in fields.items()}
    expected = {_without_surrogates(k): (v if isinstance(v, np.ndarray) else _decoded(v)) for k, v in fields.items()}
    if len(expected) != len(sent):  # two keys that became the same after U+FFFD: skip
        sent = {"value": arr(np.zeros(2))}
        expected = {"value": np.zeros(2)}
    return sent, expected


def _spec(dtype="float64", shape=(2,), data=None):
    if data is None:
        data = arr(np.zeros(shape, dtype="float64"))["__ndarray__"]["data"] if dtype == "float64" else ""
    return {"__ndarray__": {"dtype": dtype, "shape": list(shape), "data": data}}


def _nested(depth: int, leaf: object, as_dict: bool) -> object:
    for _ in range(depth):
        leaf = {"d": leaf} if as_dict else [leaf]
    return leaf


MALFORMED = [  # (a value inside {"v": ...} or as the whole value, substring of the call's error)
    ({"v": _spec(shape=(0, 2**64), data="")}, "malformed data"),
    ({"v": _spec(shape=(2**40, 2**40), data="")}, "malformed data"),
    ({"v": _spec(shape=(0, 2**40, 2**40), data="")}, "malformed data"),
    ({"v": _spec(shape=(10**400,), data="")}, "malformed data"),
    ({"v": _spec(shape=(2**20, 2**20), data="")}, "malformed data"),
    ({"v": _spec(shape=(-1,), data="")}, "malformed data"),
    ({"v": {"__ndarray__": {"dtype": "float64", "shape": [True], "data": ""}}}, "malformed data"),
    ({"v": {"__ndarray__": {"dtype": "float64", "shape": [2.0], "data": ""}}}, "malformed data"),
    ({"v": {"__ndarray__": {"dtype": "float64", "shape": "3", "data": ""}}}, "malformed data"),
    ({"v": {"__ndarray__": {"dtype": "float64", "shape": [1] * 33, "data": "AAAAAAAAAAA="}}}, "malformed data"),
    ({"v": _spec(dtype="object", shape=(1,), data="AAAAAAAAAAA=")}, "malformed data"),
    ({"v": _spec(dtype="float16", shape=(1,), data="AAA=")}, "malformed data"),
    ({"v": {"__ndarray__": {"dtype": 5, "shape": [1], "data": ""}}}, "malformed data"),
    ({"v": {"__ndarray__": {"dtype": "\udcff", "shape": [1], "data": ""}}}, "malformed data"),
    ({"v": _spec(data="!!!!")}, "malformed data"),
    ({"v": _spec(data="é\udcff")}, "malformed data"),
    ({"v": {"__ndarray__": {"dtype": "float64", "shape": [1], "data": 5}}}, "malformed data"),
    ({"v": _spec(shape=(2,), data="AAAAAAAAAAA=")}, "malformed data"),  # 8 bytes for 16
    ({"v": {"__ndarray__": {"dtype": "float64", "shape": [0], "data": "", "x": 1}}}, "malformed data"),
    ({"v": {"__ndarray__": [1, 2]}}, "malformed data"),
    ({"v": {**_spec(), "x": 1}}, "malformed data"),
    ({"v": _nested(200, 1.0, as_dict=False)}, "malformed data"),
    ({"v": _nested(200, 1.0, as_dict=True)}, "malformed data"),
    ({"ok": 1.0, "v": [0, {"w": _spec(shape=(-5,), data="")}]}, "malformed data"),
    ([1.0, 2.0], "not an object of values"),
    (5, "not an object of values"),
    ("\udcff", "not an object of values"),
    (None, "not an object of values"),
    (True, "not an object of values"),
    (_spec(shape=(1,), data="AAAAAAAAAAA="), "not an object of values"),  # a bare array
]
EDGE_VALID = [  # values that look odd but decode
    ({"v": _spec(shape=(0, 2**30), data="")}, {"v": np.zeros((0, 2**30))}),
    ({"v": _spec(shape=(0,) * 32, data="")}, {"v": np.zeros((0,) * 32)}),
    ({"v": arr(np.array([math.nan, math.inf, -math.inf]))}, {"v": np.array([math.nan, math.inf, -math.inf])}),
    ({"s": "\udcff", "\ud800": "ok"}, {"s": "\ufffd", "\ufffd": "ok"}),
    ({"v": _nested(60, 1.0, as_dict=False)}, {"v": _nested(60, 1.0, as_dict=False)}),
]
DURATIONS = [0.25, 0, -1.5, 1e308, math.nan, math.inf, "1", None, True, [1]]


@st.composite
def call_outcomes(draw):
    """(status, error, value, duration) as sent, and (status, error substring or None, value)."""
    duration = draw(st.sampled_from(DURATIONS))
    kind = draw(st.sampled_from(["valid", "valid", "edge", "malformed", "failed", "bad_status"]))
    if kind == "valid":
        sent, expected = draw(valid_values())
        return ("ok", "", sent, duration), ("ok", None, expected)
    if kind == "edge":
        sent, expected = draw(st.sampled_from(EDGE_VALID))
        return ("ok", "", sent, duration), ("ok", None, expected)
    if kind == "malformed":
        sent, why = draw(st.sampled_from(MALFORMED))
        return ("ok", "", sent, duration), ("crashed", why, None)
    if kind == "failed":
        status = draw(st.sampled_from(["error", "timeout", "crashed", "not_run"]))
        error = draw(nasty_text | st.sampled_from([5, None, ["x"]]))
        return (status, error, draw(st.none() | valid_values().map(lambda p: p[0])), duration), (status, "", None)
    status = draw(st.sampled_from(["OK", "ok ", None, 3, ["ok"], {"ok": 1}, "\udcff", "result"]))
    return (status, "", {"v": 1.0}, duration), ("crashed", "malformed outcome", None)


end_specs = st.fixed_dictionaries({}, optional={
    "status": st.sampled_from(["ok", "ok", "load_error", "timeout", "crashed", "sandbox_error"]),
    "message": nasty_text | st.sampled_from([5, None, ["m"]]),
    "notes": st.lists(nasty_text | st.integers(), max_size=3) | st.sampled_from(
        [["n"] * 100, "notes", None, {"a": 1}]),
    "stdout": nasty_text | st.sampled_from([None, 7]),
    "stderr": nasty_text,
    "output_dropped_bytes": st.sampled_from([0, 17, -3, True, "5", 2.5, 10**30, None]),
    "tampering": st.lists(nasty_text | st.integers(), max_size=3) | st.sampled_from(
        [["t"] * 50, "builtins", None]),
    "load_fallback": st.sampled_from([None, ["timeout", "took long"], ["crashed", "oom"], ["ok", "x"], "timeout",
                                      ["timeout", 5], ["timeout", "m", "x"], ["crashed", "\udcff"]]),
})
done_specs = st.fixed_dictionaries({}, optional={
    "exit": st.sampled_from([0, 9, "x", None]),
    "oom_kills": st.sampled_from([0, 2, True, "3"]),
    "leftover_processes": st.sampled_from([0, 1, "x"]),
})

GARBAGE = [b"", b"\xff\xfe\xfd", b"not json", b"[1,2]", b'"str"', b"{", b"null", b"{}", b"\xed\xb3\xbf",
           b'{"type":"call","s":"\xff"}']


EVENT_KINDS = ("call", "call", "end", "done", "foreign", "nosession", "unknown_id", "garbage", "unknown_type",
               "oversize", "truncated", "close")


@st.composite
def any_event(draw, n: int, kinds=EVENT_KINDS):
    kind = draw(st.sampled_from(kinds))  # uniform over the kinds, whatever their parameters
    if kind == "call":
        return ("call", draw(st.integers(0, n - 1)), draw(call_outcomes()))
    if kind == "end":
        return ("end", draw(end_specs))
    if kind == "done":
        return ("done", draw(done_specs))
    if kind in ("foreign", "nosession"):
        return (kind, draw(st.sampled_from(["call", "end", "done"])), draw(st.integers(0, n - 1)))
    if kind == "unknown_id":
        return (kind, draw(st.sampled_from(["zz", "", "c9", "\udcff", 5, None, ["c0"]])))
    if kind == "garbage":
        return (kind, draw(st.sampled_from(GARBAGE)))
    if kind == "unknown_type":
        return (kind, draw(st.sampled_from(["ready", "result", None, 5, "CALL", "run"])))
    return (kind,)


SHAPES = ("free", "clean", "injected", "duplicate", "trailing", "trailing_later")


@st.composite
def scenarios(draw, shape: str):
    """(ids, events, cuts): the planned call ids, the scripted events of one run, and where its
    byte stream is cut into separate writes."""
    ids = draw(st.lists(st.sampled_from(["c0", "c1", "c2", "odd id", "é"]), min_size=1, max_size=4, unique=True))
    n = len(ids)
    order = draw(st.permutations(range(n)))
    reported = order[:n if draw(st.integers(0, 2)) else draw(st.integers(0, n))]
    base = [("call", i, draw(call_outcomes())) for i in reported]
    base += [("end", draw(end_specs)), ("done", draw(done_specs))]
    if shape == "free":  # anything, in any order
        events = draw(st.lists(any_event(n), max_size=8))
    elif shape == "clean":  # a well-ordered run (whatever the values inside its frames)
        events = base
    elif shape == "injected":  # a well-ordered run with one more event somewhere
        position = draw(st.integers(0, len(base) - 1))
        events = base[:position] + [draw(any_event(n))] + base[position:]
    elif shape == "duplicate":  # a second outcome for a call, anywhere after its first
        first = draw(st.integers(0, len(base) - 2)) if len(base) > 2 else 0
        index = base[first][1] if base[first][0] == "call" else draw(st.integers(0, n - 1))
        position = draw(st.integers(first + 1, len(base) - 1))
        events = base[:position] + [("call", index, draw(call_outcomes()))] + base[position:]
    else:  # a well-ordered run, then data between two runs (after the pool has returned: "later")
        after = draw(st.lists(any_event(n), min_size=1, max_size=2))
        events = base + ([("gate",)] if shape == "trailing_later" else []) + after
    if not any(e[0] in ("done", "close", "truncated") for e in events):
        events.append(draw(st.sampled_from([("done", {}), ("close",)])))
    cuts = draw(st.lists(st.integers(1, 400), max_size=3))  # where the byte stream is split in writes
    return ids, events, cuts


def rechunk(items, cuts):
    """The same bytes, written in pieces cut at ``cuts`` with a pause between: a frame's bytes
    may then reach the pool in several reads."""
    if not cuts:
        return items
    head = []
    while items and isinstance(items[0], bytes):
        head.append(items.pop(0))
    data, out, start = b"".join(head), [], 0
    for cut in sorted(set(cuts)):
        if start < cut < len(data):
            out += [data[start:cut], ("sleep", 0.002)]
            start = cut
    return out + [data[start:]] + items


def render(events, ids, session):
    items = []
    for event in events:
        kind = event[0]
        if kind == "call":
            (status, error, value, duration) = event[2][0]
            items.append(call_frame(session, ids[event[1]], value, status, error, duration))
        elif kind == "end":
            items.append(end_frame(session, **event[1]))
        elif kind == "done":
            items.append(done_frame(session, **event[1]))
        elif kind in ("foreign", "nosession"):
            what, index = event[1], event[2]
            frame = {"type": what, "id": ids[index], "status": "ok", "duration_s": 0.0, "error": "",
                     "value": {"v": FOREIGN, "a": arr(np.array([FOREIGN]))}, "message": "", "notes": [],
                     "exit": 0}
            if kind == "foreign":
                frame["s"] = other_session(session)
            items.append(encode(frame))
        elif kind == "unknown_id":
            items.append(call_frame(session, event[1], {"v": FOREIGN}))
        elif kind == "garbage":
            items.append(protocol.frame(event[1]))
        elif kind == "unknown_type":
            items.append(encode({"type": event[1], "s": session, "id": ids[0], "value": {"v": FOREIGN}}))
        elif kind == "oversize":
            items.append(b"\xff\xff\xff\xff" + b"{}" * 8)
        elif kind == "gate":  # wait until the pool has returned from this run
            items.append(("gate",))
        elif kind == "truncated":
            items += [b"\x00\x00\x01\x00" + b'{"type":"end"', CLOSE]
            break
        elif kind == "close":
            items.append(CLOSE)
            break
    return items


def model(ids, events):
    """What the pool must make of ``events``: ("stream_error",) or ("done", end, calls, trailing)."""
    recorded: dict[str, tuple] = {}
    end = None
    events = [e for e in events if e[0] != "gate"]
    for position, event in enumerate(events):
        kind = event[0]
        if kind == "call":
            call_id = ids[event[1]]
            if end is not None or call_id in recorded:
                return ("stream_error",)
            recorded[call_id] = event[2][1]
        elif kind == "end":
            if end is not None:
                return ("stream_error",)
            end = event[1]
        elif kind == "done":
            if end is None:  # done before end: a frame out of order
                return ("stream_error",)
            return ("done", end, recorded, bool(events[position + 1:]))
        else:
            return ("stream_error",)
    raise AssertionError("every script ends with done or a closed pipe")


def check_stream_error(result, ids, restarts: int) -> None:
    assert result.status == "sandbox_error", result
    assert restarts == 1
    assert all(result.calls[i].status == "not_run" for i in ids), result.calls


def check_done(result, ids, end, recorded) -> None:
    status = end.get("status", "ok")
    assert result.status == status
    assert len(result.message) <= 4000
    assert len(result.stdout) <= 1 << 20
    dropped = end.get("output_dropped_bytes", 0)
    assert result.output_dropped_bytes == (dropped if type(dropped) is int and dropped >= 0 else 0)
    assert len(result.suspected_tampering) <= 20
    for call_id in ids:
        call = result.calls[call_id]
        if call_id not in recorded:
            assert call.status == "not_run", call
            continue
        status, why, value = recorded[call_id]
        assert call.status == status, (call, recorded[call_id])
        if why:
            assert why in call.error, (call, why)
        if status == "ok":
            assert same_value(call.value, value, capped=True), (call.value, value)
        else:
            assert call.value is None
            assert len(call.error) <= 4000


# ------------------------------------------------------------------------------------ the fuzz
def follow_up_values(ids):
    return {call_id: {"value": np.array([float(k), k + 0.5]), "k": k} for k, call_id in enumerate(ids)}


@pytest.mark.parametrize("shape", SHAPES)
@FUZZ
@given(data=st.data())
def test_fuzzed_streams_are_contained(shape, data, tmp_path):
    ids, events, cuts = data.draw(scenarios(shape), label="scenario")
    groups = [[{"id": call_id, "fn": "f"} for call_id in ids]]
    expected = model(ids, events)
    note(f"model: {expected[0]}{' with data after done' if expected[0] == 'done' and expected[3] else ''}")
    pool = make_pool()
    fake = FakeZygote()
    alone = FakeZygote()
    try:
        result = submit(pool, fake, tmp_path, groups,
                        lambda request: rechunk(render(events, ids, request["session"]), cuts))
        restarts_first = fake.restarts
        check_well_formed(result, ids)
        note(f"calls: {sorted({call.status for call in result.calls.values()})}")
        if expected[0] == "stream_error":
            check_stream_error(result, ids, restarts_first)
        else:
            _, end, recorded, trailing = expected
            if trailing and ("gate",) in events:  # the pool returned before the trailing bytes came
                assert restarts_first == 0
            if trailing and restarts_first:  # the trailing bytes came with ``done``
                check_stream_error(result, ids, restarts_first)
            else:
                assert restarts_first == 0, result
                check_done(result, ids, end, recorded)
        # (4) the next submission on the same zygote is graded as a fresh zygote grades it alone
        values = follow_up_values(ids)
        after = submit(pool, fake, tmp_path, groups, clean_script(values))
        reference = submit(pool, alone, tmp_path, groups, clean_script(values))
        check_well_formed(after, ids)
        assert reference.status == "ok" and alone.restarts == 0
        assert all(same_value(reference.calls[i].value, values[i]) for i in ids)
        assert same_result(after, reference), (after, reference)
        trailing_bytes = expected[0] == "done" and expected[3]
        assert fake.restarts == (1 if expected[0] == "stream_error" or trailing_bytes else 0)
        assert len(fake.requests) == 2
    finally:
        fake.stop()
        alone.stop()


# ------------------------------------------------------------------------ classic cases, by hand
@pytest.fixture()
def pool():
    return make_pool()


@pytest.fixture()
def fake():
    zygote = FakeZygote()
    yield zygote
    zygote.stop()


GROUPS = [[{"id": "c0", "fn": "f"}], [{"id": "c1", "fn": "g"}]]
VALUES = follow_up_values(["c0", "c1"])


def assert_next_run_clean(pool, fake, tmp_path, restarts: int) -> None:
    result = submit(pool, fake, tmp_path, GROUPS, clean_script(VALUES))
    assert result.status == "ok" and result.stdout == "clean"
    for call_id, value in VALUES.items():
        assert result.calls[call_id].status == "ok"
        assert same_value(result.calls[call_id].value, value)
    assert fake.restarts == restarts


def test_huge_shape_array_fails_its_call_only(pool, fake, tmp_path):
    def script(request):
        s = request["session"]
        return [call_frame(s, "c0", {"v": _spec(shape=(0, 2**64), data="")}),
                call_frame(s, "c1", {"v": arr(np.arange(3.0))}), end_frame(s), done_frame(s)]

    result = submit(pool, fake, tmp_path, GROUPS, script)
    assert result.status == "ok"
    assert result.calls["c0"].status == "crashed" and "malformed data" in result.calls["c0"].error
    assert result.calls["c0"].value is None
    assert result.calls["c1"].status == "ok" and same_value(result.calls["c1"].value, {"v": np.arange(3.0)})
    assert fake.restarts == 0
    assert_next_run_clean(pool, fake, tmp_path, restarts=0)


def test_frame_of_another_session_is_a_sandbox_error(pool, fake, tmp_path):
    def script(request):
        s = request["session"]
        return [call_frame(other_session(s), "c0", {"v": FOREIGN}), call_frame(s, "c1", {"v": 1.0}),
                end_frame(s), done_frame(s)]

    result = submit(pool, fake, tmp_path, GROUPS, script)
    assert result.status == "sandbox_error" and "another run" in result.message
    assert {c.status for c in result.calls.values()} == {"not_run"}
    assert fake.restarts == 1
    assert_next_run_clean(pool, fake, tmp_path, restarts=1)


def test_data_after_done_restarts_before_the_next_run(pool, fake, tmp_path):
    def script(request):
        s = request["session"]
        return [call_frame(s, "c0", {"v": 1.0}), call_frame(s, "c1", {"v": 2.0}), end_frame(s), done_frame(s),
                ("gate",),  # the pool has returned by now: the rest is between two runs
                call_frame(s, "c0", {"v": FOREIGN}), end_frame(s), done_frame(s)]

    result = submit(pool, fake, tmp_path, GROUPS, script)
    assert result.status == "ok" and fake.restarts == 0
    assert same_value(result.calls["c0"].value, {"v": 1.0})
    assert fake.has_stray_data()
    assert_next_run_clean(pool, fake, tmp_path, restarts=1)
    sessions = [request["session"] for request in fake.requests]
    assert len(sessions) == 2 and sessions[0] != sessions[1]


def test_data_after_done_in_the_same_write(pool, fake, tmp_path):
    def script(request):
        s = request["session"]
        return [b"".join([call_frame(s, "c0", {"v": 1.0}), end_frame(s), done_frame(s), call_frame(s, "c1", {})])]

    result = submit(pool, fake, tmp_path, GROUPS, script)
    assert result.status == "sandbox_error" and "after the end" in result.message
    assert fake.restarts == 1
    assert_next_run_clean(pool, fake, tmp_path, restarts=1)


@pytest.mark.parametrize("case", ["duplicate", "unknown_id", "after_end", "garbage", "not_utf8", "oversize",
                                  "eof", "eof_in_frame", "two_ends", "no_session"])
def test_unexpected_stream_states_restart_the_zygote(case, pool, fake, tmp_path):
    def script(request):
        s = request["session"]
        first = call_frame(s, "c0", {"v": 1.0})
        tail = [end_frame(s), done_frame(s)]
        return {
            "duplicate": [first, call_frame(s, "c0", {"v": 2.0})] + tail,
            "unknown_id": [first, call_frame(s, "c2", {"v": 2.0})] + tail,
            "after_end": [first, end_frame(s), call_frame(s, "c1", {"v": 2.0}), done_frame(s)],
            "garbage": [first, protocol.frame(b"not json")] + tail,
            "not_utf8": [first, protocol.frame(b'{"s":"\xff"}')] + tail,
            "oversize": [first, b"\xff\xff\xff\xff"] + tail,
            "eof": [first, CLOSE],
            "eof_in_frame": [first, b"\x00\x00\x00\x40{", CLOSE],
            "two_ends": [first, end_frame(s), end_frame(s), done_frame(s)],
            "no_session": [encode({"type": "call", "id": "c0", "status": "ok", "value": {"v": 1.0}})] + tail,
        }[case]

    result = submit(pool, fake, tmp_path, GROUPS, script)
    check_well_formed(result, ["c0", "c1"])
    assert result.status == "sandbox_error"
    assert {c.status for c in result.calls.values()} == {"not_run"}
    assert fake.restarts == 1
    assert_next_run_clean(pool, fake, tmp_path, restarts=1)


def test_done_without_end_is_a_stream_error_with_restart(pool, fake, tmp_path):
    """``done`` before ``end`` is a frame out of order: nothing of the run is kept (not even the
    call that came back), and the zygote is replaced before the next submission."""
    result = submit(pool, fake, tmp_path, GROUPS,
                    lambda r: [call_frame(r["session"], "c0", {"v": 1.0}), done_frame(r["session"], exit=9)])
    assert result.status == "sandbox_error" and "without a report (wait status 9)" in result.message
    assert result.message.startswith("StreamError")
    assert {c.status for c in result.calls.values()} == {"not_run"}
    assert fake.restarts == 1
    assert_next_run_clean(pool, fake, tmp_path, restarts=1)


# ------------------------------------------------------------------------- gaps the fuzz found
# Each was a failure of pool.py when this file was written (now fixed): kept as regression tests.
def _one_run(pool, fake, tmp_path, frames):
    return submit(pool, fake, tmp_path, GROUPS, lambda request: frames(request["session"]))


def test_load_fallback_message_is_valid_text(pool, fake, tmp_path):
    result = _one_run(pool, fake, tmp_path,
                      lambda s: [end_frame(s, load_fallback=["crashed", "\udcff"]), done_frame(s)])
    check_well_formed(result, ["c0", "c1"])


def test_huge_integer_duration_fails_nothing(pool, fake, tmp_path):
    result = _one_run(pool, fake, tmp_path, lambda s: [
        call_frame(s, "c0", {"v": 1.0}, duration=10**400), call_frame(s, "c1", {"v": 2.0}),
        end_frame(s), done_frame(s)])
    assert result.status == "ok", result.message
    assert result.calls["c0"].status == "ok" and result.calls["c0"].duration_s == 0.0
    assert fake.restarts == 0


@pytest.mark.parametrize("status", ["pwned", None, 5])
def test_unknown_run_status_is_not_passed_through(status, pool, fake, tmp_path):
    result = _one_run(pool, fake, tmp_path, lambda s: [end_frame(s, status=status), done_frame(s)])
    assert result.status in RUN_STATUSES, result.status
