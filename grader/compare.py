"""Comparing a student's raw numbers with expected ones: pure functions, float64, pytest-style reports.

A comparison never trusts the student's objects: it receives float64 numpy arrays rebuilt by the
grader from plain data. ``Comparison.message`` reads like a pytest assertion report: a summary line,
then how many elements differ, the largest absolute and relative differences, the first differing
index with expected and received values, and the tolerance used.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Tolerance:
    """``|got - expected| <= atol + rtol * |expected|``, elementwise (numpy's ``isclose``)."""

    rtol: float
    atol: float

    def __str__(self) -> str:
        return f"rtol={self.rtol:g}, atol={self.atol:g}"


@dataclass(frozen=True)
class Comparison:
    ok: bool
    message: str


def shape_str(shape: tuple[int, ...] | list[int]) -> str:
    return "[" + ", ".join(str(s) for s in shape) + "]"


def fmt(x: float) -> str:
    """A float as a short, exact-enough string (``repr`` precision only where it matters)."""
    if np.isnan(x):
        return "nan"
    if np.isinf(x):
        return "inf" if x > 0 else "-inf"
    return f"{x:.10g}"


def summarize(arr: np.ndarray, limit: int = 6) -> str:
    """``[0.693147, 1.2, ...] (shape [8])``: a few values and the shape, never the whole array."""
    flat = np.asarray(arr, dtype=np.float64).reshape(-1)
    head = ", ".join(fmt(v) for v in flat[:limit])
    more = ", ..." if flat.size > limit else ""
    if arr.ndim == 0:
        return fmt(float(flat[0]))
    return f"[{head}{more}] (shape {shape_str(arr.shape)})"


def same_size(got: np.ndarray, expected: np.ndarray) -> bool:
    return got.size == expected.size


def close(got: np.ndarray, expected: np.ndarray, tol: Tolerance) -> np.ndarray:
    """Elementwise closeness of two same-size arrays (flattened); NaN matches only NaN."""
    g, e = got.reshape(-1), expected.reshape(-1)
    return np.isclose(g, e, rtol=tol.rtol, atol=tol.atol, equal_nan=True)


def matches(got: np.ndarray, expected: np.ndarray, tol: Tolerance) -> bool:
    """True when ``got`` holds the same numbers as ``expected`` (same size, all close)."""
    return same_size(got, expected) and bool(close(got, expected, tol).all())


def compare(got: np.ndarray, expected: np.ndarray, tol: Tolerance, what: str = "value") -> Comparison:
    """Compare values; the shapes only need to hold the same number of elements.

    Shape rules are a separate check: here a scalar held as ``[1]`` equals a 0-dim one.
    """
    got = np.asarray(got, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    if not same_size(got, expected):
        return Comparison(False, f"{what}: expected {expected.size} number(s) (shape {shape_str(expected.shape)}), "
                                 f"got {got.size} (shape {shape_str(got.shape)})")
    ok = close(got, expected, tol)
    if ok.all():
        return Comparison(True, f"{what}: all {expected.size} value(s) within {tol}")
    g, e = got.reshape(-1), expected.reshape(-1)
    bad = np.flatnonzero(~ok)
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        abs_diff = np.abs(g - e)
        rel_diff = abs_diff / np.abs(e)
    finite = np.isfinite(abs_diff)
    max_abs = float(np.max(abs_diff[bad])) if finite[bad].all() else float("inf")
    rel_bad = rel_diff[bad]
    max_rel = float(np.max(rel_bad)) if np.isfinite(rel_bad).all() else float("inf")
    i = int(bad[0])
    index = [int(k) for k in np.unravel_index(i, expected.shape)] if expected.ndim else []
    lines = [
        f"{what}: {bad.size} of {expected.size} value(s) differ (tolerance {tol})",
        f"  max abs difference {fmt(max_abs)}, max rel difference {fmt(max_rel)}",
        (f"  first at index {index}: expected {fmt(float(e[i]))}, got {fmt(float(g[i]))}" if index
         else f"  expected {fmt(float(e[i]))}, got {fmt(float(g[i]))}"),
    ]
    n_nonfinite = int(np.sum(~np.isfinite(g)))
    if n_nonfinite:
        lines.append(f"  {n_nonfinite} received value(s) are nan or inf")
    return Comparison(False, "\n".join(lines))
