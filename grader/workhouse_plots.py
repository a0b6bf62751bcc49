"""The workhouse picture for a student's feedback: their samples beside the reference's, over the
ring, and their loss curves. A pure function of plain arrays; writes one PNG atomically.

Matplotlib's object API with the Agg canvas (no ``pyplot``: the grader judges in threads), fixed
size and DPI, and no metadata, so the same arrays give the same bytes.
"""
from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np

from grader.atomic import write_atomic

RING_MODES = 8
RING_RADIUS = 2.0
RING_STD = 0.02
HIGH_QUALITY_RADIUS = 3 * RING_STD   # reference.metrics: a sample this close to a centre is "high quality"
LIMIT = 3.0                          # the scatter panels show [-LIMIT, LIMIT]^2; samples outside are counted
MAX_POINTS = 2000                    # points drawn per panel (the first ones)


def _centres() -> np.ndarray:
    angles = np.arange(RING_MODES) * (2 * math.pi / RING_MODES)
    return RING_RADIUS * np.stack([np.cos(angles), np.sin(angles)], axis=1)


def _as_points(samples) -> np.ndarray:
    arr = np.asarray(samples, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] != 2:
        raise ValueError(f"samples must have shape [N, 2], got {list(arr.shape)}")
    return arr[:MAX_POINTS]


def _scatter(ax, samples: np.ndarray, title: str, colour: str) -> None:
    from matplotlib.patches import Circle

    centres = _centres()
    for c in centres:
        ax.add_patch(Circle(tuple(c), HIGH_QUALITY_RADIUS, facecolor="none", edgecolor="0.3", lw=0.8, zorder=4))
    ax.scatter(centres[:, 0], centres[:, 1], marker="+", s=60, c="black", linewidths=0.8, zorder=3)
    finite = np.isfinite(samples).all(axis=1)
    pts = samples[finite]
    inside = (np.abs(pts) <= LIMIT).all(axis=1)
    ax.scatter(pts[inside, 0], pts[inside, 1], s=3, alpha=0.35, c=colour, edgecolors="none", zorder=2)
    outside = int((~inside).sum()) + int((~finite).sum())
    note = f"{len(samples)} samples" + (f", {outside} outside the frame" if outside else "")
    ax.set_title(f"{title}\n{note}; circles: 3 std around each mode", fontsize=9)
    ax.set_xlim(-LIMIT, LIMIT)
    ax.set_ylim(-LIMIT, LIMIT)
    ax.set_aspect("equal")
    ax.tick_params(labelsize=7)


def _losses(ax, d_loss, g_loss) -> None:
    d = np.asarray(d_loss, dtype=np.float64).reshape(-1)
    g = np.asarray(g_loss, dtype=np.float64).reshape(-1)
    if d.size == 0 and g.size == 0:
        ax.text(0.5, 0.5, "no loss lists came back", ha="center", va="center", transform=ax.transAxes, fontsize=9)
    if d.size:
        ax.plot(np.arange(d.size), d, lw=0.8, c="tab:red", label="d_loss")
    if g.size:
        ax.plot(np.arange(g.size), g, lw=0.8, c="tab:blue", label="g_loss")
    ax.axhline(math.log(2), ls="--", lw=0.7, c="tab:red", alpha=0.6, label="log 2 (D undecided)")
    ax.axhline(0.5 * math.log(2), ls=":", lw=0.7, c="tab:blue", alpha=0.6, label="1/2 log 2")
    finite = np.concatenate([d[np.isfinite(d)], g[np.isfinite(g)]])
    if finite.size:
        lo, hi = np.percentile(finite, [1, 99])
        pad = 0.1 * (hi - lo) + 1e-3
        ax.set_ylim(min(lo - pad, 0.0), max(hi + pad, math.log(2) + 0.1))
    ax.set_xlabel("step", fontsize=8)
    ax.set_title("your logged losses", fontsize=9)
    ax.legend(fontsize=7, loc="upper right")
    ax.tick_params(labelsize=7)


def render_workhouse_png(student_samples, reference_samples, d_loss, g_loss) -> bytes:
    """The picture as PNG bytes: student's samples | reference's samples | loss curves."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(12, 4), dpi=100)
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, 3)
    _scatter(axes[0], _as_points(student_samples), "your generator's samples", "tab:blue")
    _scatter(axes[1], _as_points(reference_samples), "the reference loop's samples (same start)", "tab:green")
    _losses(axes[2], d_loss, g_loss)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", metadata={"Software": None})
    return buffer.getvalue()


def write_workhouse_png(path, student_samples, reference_samples, d_loss, g_loss) -> Path:
    """Write the picture to ``path`` (atomically); returns the path.

    ``student_samples`` and ``reference_samples``: arrays ``[N, 2]`` (points outside the frame
    and non-finite ones are counted, not drawn); ``d_loss`` and ``g_loss``: the student's loss
    lists (may be empty)."""
    path = Path(path)
    write_atomic(path, render_workhouse_png(student_samples, reference_samples, d_loss, g_loss))
    return path
