"""The one serialisation used across every process boundary that touches student code.

A message is a JSON object. Values are plain JSON (null, booleans, integers, floats with NaN and
infinities, strings, lists, objects with string keys) and numpy arrays, which travel as::

    {"__ndarray__": {"dtype": "float64", "shape": [2, 3], "data": "<base64 of little-endian bytes>"}}

with the dtype one of ``ALLOWED_DTYPES``. A frame is a 4-byte big-endian length and that many
bytes of UTF-8 JSON. Every read is capped; decoding validates everything and raises
``ProtocolError`` on anything else. Nothing is ever pickled or evaluated.

This module also runs inside the sandbox (to encode results), after the student's code may have
replaced attributes of ``json``, ``base64``, ``numpy`` or ``builtins``: it binds what it uses at
import time, before any student code runs, so such patches do not reach it.
"""
from __future__ import annotations

import builtins as _builtins_module

__builtins__ = dict(_builtins_module.__dict__)  # noqa: A001 - a private copy: see the docstring

import base64
import binascii
import builtins
import json
import math
import os
import re
import select
import struct
import time

import numpy as np

ALLOWED_DTYPES = ("float64", "float32", "int64", "bool")
MAX_DEPTH = 64  # nesting of lists and objects in one message
MAX_NDIM = 32
MAX_ELEMENTS = 1 << 40  # an array's shape, zero-sized dimensions counted as one, at most this
_HEADER = struct.Struct(">I")

# Bound at import, before student code runs in the same process (see the module docstring).
_type, _len, _str, _int, _float, _bool, _list, _tuple, _dict = (
    builtins.type, builtins.len, builtins.str, builtins.int, builtins.float, builtins.bool,
    builtins.list, builtins.tuple, builtins.dict,
)
_NoneType = builtins.type(None)
_ndarray = np.ndarray
_frombuffer = np.frombuffer
_np_dtype = np.dtype
_np_prod = math.prod
_b64encode = base64.b64encode
_b64decode = base64.b64decode
_json_encoder = json.JSONEncoder(ensure_ascii=True, allow_nan=True, separators=(",", ":"))
_json_encode = _json_encoder.encode
_json_decoder = json.JSONDecoder()
_json_decode = _json_decoder.decode
_NUMPY_SCALARS = (np.float64, np.float32, np.int64, np.bool_)
_LITTLE = {name: _np_dtype(name).newbyteorder("<") for name in ALLOWED_DTYPES}
_os_write, _os_read = os.write, os.read
_SURROGATES = re.compile("[\ud800-\udfff]")


class ProtocolError(ValueError):
    """A message that is malformed, of a type that may not cross, or over its size cap."""


class TooLarge(ProtocolError):
    """A message over its size cap; ``size`` is its size in bytes (at least)."""

    def __init__(self, size: int, cap: int) -> None:
        super().__init__(f"{size:,} bytes, over the {format_bytes(cap)} cap")
        self.size, self.cap = size, cap


def format_bytes(n: int) -> str:
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= scale and n % scale == 0:
            return f"{n // scale} {unit}"
    return f"{n:,} bytes"


# ----------------------------------------------------------------------------------------- encode
def to_jsonable(value: object, max_bytes: int | None = None) -> object:
    """``value`` with arrays replaced by their ``__ndarray__`` objects; raises ``ProtocolError``
    (``TooLarge`` past ``max_bytes``, counted as the base64 and text it would take)."""
    budget = [max_bytes if max_bytes is not None else 1 << 62]
    return _encode(value, 0, budget)


class _OverBudget(ProtocolError):
    pass


def _spend(budget: list[int], n: int) -> None:
    budget[0] -= n
    if budget[0] < 0:
        raise _OverBudget("value too large to send")


def _encode(value: object, depth: int, budget: list[int]) -> object:
    if depth > MAX_DEPTH:
        raise ProtocolError(f"value nested deeper than {MAX_DEPTH} levels")
    kind = _type(value)
    if kind is _NoneType or kind is _bool:
        _spend(budget, 5)
        return value
    if kind is _int:
        _spend(budget, 24)
        return value
    if kind is _float:
        _spend(budget, 24)
        return value
    if kind is _str:
        _spend(budget, _len(value) + 2)
        return value
    if kind is _list or kind is _tuple:
        _spend(budget, 2 + _len(value))
        return [_encode(item, depth + 1, budget) for item in value]
    if kind is _dict:
        out = {}
        for key, item in _dict.items(value):
            if _type(key) is not _str:
                raise ProtocolError(f"object keys must be strings, got a key of type {_type(key).__name__}")
            if key == "__ndarray__":
                raise ProtocolError("the key '__ndarray__' is reserved")
            _spend(budget, _len(key) + 4)
            out[key] = _encode(item, depth + 1, budget)
        return out
    if kind in _NUMPY_SCALARS:
        return _encode(value.item(), depth, budget)
    if kind is _ndarray:
        name = value.dtype.name
        if name not in _LITTLE:
            raise ProtocolError(
                f"arrays of dtype {name} cannot be sent; allowed: {', '.join(ALLOWED_DTYPES)}"
            )
        _spend(budget, (value.nbytes + 2) // 3 * 4 + 80)
        array = value if value.flags.c_contiguous else value.copy(order="C")  # 0-d stays 0-d
        array = array.astype(_LITTLE[name], copy=False)
        data = _b64encode(array.tobytes()).decode("ascii")
        return {"__ndarray__": {"dtype": name, "shape": [_int(n) for n in array.shape], "data": data}}
    raise ProtocolError(f"a value of type {_type_name(kind)} cannot be sent out of the sandbox")


def _type_name(kind: type) -> str:
    try:
        module = _type.__getattribute__(kind, "__module__")
        name = _type.__getattribute__(kind, "__qualname__")
        return name if module == "builtins" else f"{module}.{name}"
    except Exception:  # noqa: BLE001 - a hostile metaclass must not break the message
        return "<unnamed type>"


def dumps(message: dict, max_bytes: int | None = None) -> bytes:
    """``message`` as UTF-8 JSON bytes; raises ``ProtocolError`` (``TooLarge``)."""
    if _type(message) is not _dict:
        raise ProtocolError("a message must be a dict")
    try:
        data = _json_encode(to_jsonable(message, max_bytes)).encode("ascii")
    except _OverBudget:
        raise TooLarge(max(_estimate(message), max_bytes + 1), max_bytes) from None
    except RecursionError:
        raise ProtocolError(f"value nested deeper than {MAX_DEPTH} levels") from None
    if max_bytes is not None and _len(data) > max_bytes:
        raise TooLarge(_len(data), max_bytes)
    return data


def _estimate(value: object, depth: int = 0) -> int:
    """A lower bound of the encoded size (for the error message of ``TooLarge``)."""
    if depth > MAX_DEPTH:
        return 0
    kind = _type(value)
    if kind is _ndarray:
        return (value.nbytes + 2) // 3 * 4
    if kind is _str:
        return _len(value)
    if kind is _list or kind is _tuple:
        return sum(_estimate(item, depth + 1) for item in value)
    if kind is _dict:
        return sum(_estimate(item, depth + 1) for item in value.values())
    return 8


# ----------------------------------------------------------------------------------------- decode
def loads(data: bytes, max_bytes: int | None = None) -> dict:
    """Decode one message, validating it fully (arrays included); raises ``ProtocolError``."""
    return _decode(loads_raw(data, max_bytes), 0)


def loads_raw(data: bytes, max_bytes: int | None = None) -> dict:
    """The JSON object of one message, arrays left in their ``__ndarray__`` form (decode them
    with ``from_jsonable``); raises ``ProtocolError``."""
    if max_bytes is not None and _len(data) > max_bytes:
        raise TooLarge(_len(data), max_bytes)
    try:
        raw = _json_decode(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as error:
        raise ProtocolError(f"not valid JSON: {_str(error)[:200]}") from None
    except RecursionError:
        raise ProtocolError("JSON nested too deeply") from None
    if _type(raw) is not _dict:
        raise ProtocolError(f"a message must be a JSON object, got {_type(raw).__name__}")
    return raw


def from_jsonable(value: object) -> object:
    """A value as sent (plain JSON, arrays as ``__ndarray__``) decoded and validated."""
    try:
        return _decode(value, 0)
    except RecursionError:
        raise ProtocolError("value nested too deeply") from None


def _decode(value: object, depth: int) -> object:
    if depth > MAX_DEPTH:
        raise ProtocolError(f"value nested deeper than {MAX_DEPTH} levels")
    kind = _type(value)
    if kind is _list:
        return [_decode(item, depth + 1) for item in value]
    if kind is _dict:
        if "__ndarray__" in value:
            if _len(value) != 1:
                raise ProtocolError("an '__ndarray__' object must have no other keys")
            return _decode_array(value["__ndarray__"])
        return {(key if key.isascii() else _valid_text(key)): _decode(item, depth + 1)
                for key, item in _dict.items(value)}
    if kind is _str and not value.isascii():
        return _valid_text(value)
    return value  # None, bool, int, float, str: all JSON can give


def _valid_text(value: str) -> str:
    """``value`` with lone surrogates (which JSON's ``\\udcff`` escapes can carry, and no
    encoder accepts) replaced by U+FFFD."""
    try:
        value.encode("utf-8")
        return value
    except UnicodeEncodeError:
        return _SURROGATES.sub("\ufffd", value)


def _decode_array(spec: object) -> np.ndarray:
    if _type(spec) is not _dict or set(spec) != {"dtype", "shape", "data"}:
        raise ProtocolError("an array must be {'dtype', 'shape', 'data'}")
    dtype, shape, data = spec["dtype"], spec["shape"], spec["data"]
    if _type(dtype) is not _str or dtype not in _LITTLE:
        raise ProtocolError(f"array dtype {dtype!r:.40} is not one of {', '.join(ALLOWED_DTYPES)}")
    if (
        _type(shape) is not _list
        or _len(shape) > MAX_NDIM
        or any(_type(n) is not _int or n < 0 for n in shape)
    ):
        raise ProtocolError(f"array shape must be a list of at most {MAX_NDIM} non-negative integers")
    if _type(data) is not _str:
        raise ProtocolError("array data must be a base64 string")
    try:
        raw = _b64decode(data.encode("ascii"), validate=True)
    except (UnicodeEncodeError, binascii.Error) as error:
        raise ProtocolError(f"array data is not valid base64: {error}") from None
    if _np_prod(max(n, 1) for n in shape) > MAX_ELEMENTS:
        raise ProtocolError(f"array shape {shape!r:.80} is too large")
    itemsize = _LITTLE[dtype].itemsize
    expected = _np_prod(shape) * itemsize
    if _len(raw) != expected:
        raise ProtocolError(
            f"array of dtype {dtype} and shape {shape} needs {expected:,} bytes, got {_len(raw):,}"
        )
    array = _frombuffer(raw, dtype=_LITTLE[dtype]).reshape(_tuple(shape))
    return array.astype(_np_dtype(dtype), copy=True)


# ----------------------------------------------------------------------------------------- frames
def dumps_raw(message: dict) -> bytes:
    """A message that came from ``loads_raw`` (plain JSON, arrays still in their
    ``__ndarray__`` form) as UTF-8 JSON bytes, unchanged."""
    return _json_encode(message).encode("ascii")


def frame(data: bytes) -> bytes:
    """``data`` with its length prefix."""
    return _HEADER.pack(_len(data)) + data


def write_frame(fd: int, message: dict, max_bytes: int | None = None) -> None:
    """Encode ``message`` and write it as one frame to ``fd`` (blocking, all bytes)."""
    write_all(fd, frame(dumps(message, max_bytes)))


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = _os_write(fd, view)
        view = view[written:]


class FrameReader:
    """Splits a byte stream into frames; raises ``TooLarge`` for a length over ``max_bytes``
    (after which the stream cannot be trusted: stop reading it)."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._buffer = bytearray()
        self.queue: list[bytes] = []  # whole frames read ahead by ``read_message``

    def feed(self, data: bytes) -> list[bytes]:
        self._buffer += data
        frames = []
        while _len(self._buffer) >= _HEADER.size:
            (length,) = _HEADER.unpack_from(self._buffer)
            if length > self.max_bytes:
                raise TooLarge(length, self.max_bytes)
            end = _HEADER.size + length
            if _len(self._buffer) < end:
                break
            frames.append(bytes(self._buffer[_HEADER.size:end]))
            del self._buffer[:end]
        return frames

    @property
    def pending(self) -> int:
        """Bytes received that are not yet part of a whole frame."""
        return _len(self._buffer)


def read_message(fd: int, reader: FrameReader, deadline: float | None, *, raw: bool = False) -> dict | None:
    """Block until one whole frame is read from ``fd`` and decode it.

    Returns None at end of file (with nothing pending); raises ``TimeoutError`` past
    ``deadline`` (a ``time.monotonic()`` value) and ``ProtocolError`` for bad data. Frames that
    arrive together are kept in ``reader`` for the next call. ``raw``: leave arrays in their
    ``__ndarray__`` form (see ``loads_raw``).
    """
    queued = reader.queue
    while not queued:
        timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
        ready, _, _ = select.select([fd], [], [], timeout)
        if not ready:
            raise TimeoutError("no message before the deadline")
        chunk = _os_read(fd, 1 << 20)
        if not chunk:
            if reader.pending:
                raise ProtocolError(f"stream ended inside a frame ({reader.pending} bytes pending)")
            return None
        queued.extend(reader.feed(chunk))
    data = queued.pop(0)
    return loads_raw(data, reader.max_bytes) if raw else loads(data, reader.max_bytes)
