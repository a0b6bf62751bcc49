"""A class report: one self-contained ``report.html`` over a grading output folder.

Sections (each an ``<h2 id=...>``): ``overview`` (students, status counts, mean and median), ``scores``
(histogram), ``functions`` (pass rate per function: share of students with every check passed,
and mean share of points), ``checks`` (pass rate per check), ``mistakes`` (diagnosed mistakes by
number of students, with who), ``not-graded`` (submissions that failed to load, timed out,
crashed or could not be run, with their message), ``tampering`` (the submissions whose own process
reported replacing the harness's functions or modules, with what: for the TA, information and not a
verdict, since that process can forge it), ``timing`` (from the ``durations`` fields:
total, mean and max per submission, the slowest ones; the last run's wall time from ``run.json``), ``versions`` (grader, Python, torch,
numpy; rubric version, sha256 and seed; isolation and limits; intake notes).

Plots are drawn with matplotlib's Agg renderer through ``matplotlib.figure.Figure`` (no global
backend switch, no pyplot state) and embedded as ``data:image/png;base64`` URIs; the file needs
nothing beside it. Every piece of text is HTML-escaped (student ids are arbitrary Unicode and
could contain ``<script>``) and ids sit in ``<bdi>`` so right-to-left characters cannot reorder
the text around them. No script, no external resource, no timestamp: the same folder gives the
same report, apart from the timing section.
"""
from __future__ import annotations

import base64
import csv
import io
import json
import statistics
from collections import Counter
from decimal import Decimal
from pathlib import Path

from grader.atomic import write_atomic
from grader.escape import html_text
from grader.exports import OutputFolderError, load_results, load_summary
from grader.reports import STATUS_TEXT, TAMPERING_NOTE, mistake_students, suspected_tampering
from grader.results import StudentResult
from grader.scoring import points_str
from grader.written.manual import NOT_MARKED, WRITTEN_FUNCTION

__all__ = ["SECTIONS", "build_report", "render_plots", "write_report"]

SECTIONS = ("overview", "scores", "functions", "checks", "mistakes", "not-graded", "tampering", "timing",
            "versions")
MAX_NAMES = 12  # students named per mistake before "and N more"
SLOWEST = 5  # slowest submissions listed
PNG_DPI = 100

CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2em auto; max-width: 1100px;
       color: #1a1a1a; line-height: 1.4; padding: 0 1em; }
h1 { border-bottom: 2px solid #444; padding-bottom: .2em; }
h2 { margin-top: 1.8em; border-bottom: 1px solid #ccc; padding-bottom: .15em; }
table { border-collapse: collapse; margin: .6em 0; font-size: 0.92em; }
th, td { border: 1px solid #ccc; padding: .25em .6em; text-align: left; vertical-align: top; }
th { background: #f0f0f0; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
pre { white-space: pre-wrap; word-break: break-word; margin: 0; font-size: 0.9em; max-height: 14em; overflow: auto; }
img { max-width: 100%; border: 1px solid #ddd; }
.bar { background: #4c72b0; height: .8em; display: inline-block; vertical-align: middle; }
.barbox { width: 120px; background: #eee; display: inline-block; }
.muted { color: #666; }
code { background: #f4f4f4; padding: 0 .2em; }
"""


def _e(text: object) -> str:
    return html_text(text)   # valid text (no lone surrogates), controls visible, escaped


def _id(student: str) -> str:
    return f"<bdi>{_e(student)}</bdi>"


def _pct(num: float, den: float) -> str:
    return f"{100 * num / den:.0f}%" if den else "n/a"


def _table(header: list[str], rows: list[list[str]], numeric: set[int] = frozenset()) -> str:
    """Cells are HTML already (callers escape); ``numeric`` columns are right-aligned."""
    head = "".join(f"<th>{h}</th>" for h in header)
    body = "".join("<tr>" + "".join(f'<td class="num">{c}</td>' if i in numeric else f"<td>{c}</td>"
                                    for i, c in enumerate(row)) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _bar(fraction: float) -> str:
    return f'<span class="barbox"><span class="bar" style="width:{max(0.0, min(1.0, fraction)) * 100:.0f}%"></span></span>'


# ----------------------------------------------------------------------------------- the numbers

def _functions(results: list[StudentResult]) -> list[str]:
    order: list[str] = []
    for r in results:
        for c in r.checks:
            if c.function not in order:
                order.append(c.function)
    return order


def _check_rates(results: list[StudentResult]) -> list[tuple[str, str, int, int]]:
    """``(function, check, passed, total)`` in rubric order."""
    counts: dict[tuple[str, str], list[int]] = {}
    for r in results:
        for c in r.checks:
            entry = counts.setdefault((c.function, c.name), [0, 0])
            entry[0] += int(c.passed)
            entry[1] += 1
    return [(fn, name, p, t) for (fn, name), (p, t) in counts.items()]


def _function_rates(results: list[StudentResult]) -> list[tuple[str, int, int, float]]:
    """``(function, students with every check passed, students, mean share of points)``."""
    out = []
    for fn in _functions(results):
        full, shares, n = 0, [], 0
        for r in results:
            checks = [c for c in r.checks if c.function == fn]
            if not checks:
                continue
            n += 1
            full += all(c.passed for c in checks)
            top = sum((c.max_score for c in checks), Decimal(0))
            shares.append(float(sum((c.score for c in checks), Decimal(0)) / top) if top else 0.0)
        out.append((fn, full, n, statistics.fmean(shares) if shares else 0.0))
    return out


# ----------------------------------------------------------------------------------- the plots

def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=PNG_DPI, metadata={"Software": None})
    return buf.getvalue()


def render_plots(results: list[StudentResult]) -> dict[str, bytes]:
    """PNG bytes by name: ``scores`` (histogram), ``functions`` and ``checks`` (pass rates)."""
    from matplotlib.figure import Figure

    if not results:
        return {}
    plots: dict[str, bytes] = {}
    scores = [float(r.score) for r in results]
    top = max(float(max(r.max_score for r in results)), 1.0)
    fig = Figure(figsize=(8, 3.6), layout="constrained")
    ax = fig.subplots()
    bins = 20
    edges = [top * i / bins for i in range(bins + 1)]
    ax.hist(scores, bins=edges, color="#4c72b0", edgecolor="white")
    ax.set_xlim(0, top)
    ax.set_xlabel(f"score (out of {points_str(Decimal(str(top)))})")
    ax.set_ylabel("students")
    ax.set_title(f"Scores of {len(results)} submissions (mean {statistics.fmean(scores):.1f}, "
                 f"median {statistics.median(scores):g})")
    ax.yaxis.get_major_locator().set_params(integer=True)
    plots["scores"] = _png(fig)

    rates = _function_rates(results)
    fig = Figure(figsize=(8, max(2.6, 0.45 * len(rates) + 1.6)), layout="constrained")
    ax = fig.subplots()
    ys = list(range(len(rates)))[::-1]
    ax.barh([y + 0.2 for y in ys], [100 * full / n if n else 0 for _, full, n, _ in rates], height=0.4,
            color="#4c72b0", label="students with every check passed")
    ax.barh([y - 0.2 for y in ys], [100 * share for *_, share in rates], height=0.4, color="#dd8452",
            label="mean share of points")
    ax.set_yticks(ys, [fn for fn, *_ in rates])
    ax.set_xlim(0, 100)
    ax.set_ylim(-0.6, len(rates) - 0.4)
    ax.set_xlabel("%")
    fig.legend(loc="outside lower center", ncols=2, fontsize="small")
    ax.set_title("Pass rate per function")
    plots["functions"] = _png(fig)

    checks = _check_rates(results)
    fig = Figure(figsize=(8, max(2.6, 0.2 * len(checks) + 1.2)), layout="constrained")
    ax = fig.subplots()
    ys = list(range(len(checks)))[::-1]
    functions = _functions(results)
    palette = ["#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860", "#da8bc3", "#8c8c8c"]
    colors = [palette[functions.index(fn) % len(palette)] for fn, *_ in checks]
    ax.barh(ys, [100 * p / t if t else 0 for *_, p, t in checks], color=colors, height=0.75)
    ax.set_yticks(ys, [f"{fn} / {name}" for fn, name, *_ in checks], fontsize=7)
    ax.set_xlim(0, 100)
    ax.set_ylim(-0.6, len(checks) - 0.4)
    ax.set_xlabel("% of submissions passing")
    ax.set_title("Pass rate per check")
    plots["checks"] = _png(fig)
    return plots


def _img(png: bytes | None, alt: str) -> str:
    if not png:
        return '<p class="muted">No plot: no results.</p>'
    return f'<img alt="{_e(alt)}" src="data:image/png;base64,{base64.b64encode(png).decode("ascii")}">'


# ---------------------------------------------------------------------------------- the sections

def _overview(results: list[StudentResult], out_dir: Path) -> str:
    status = Counter(r.status for r in results)
    scores = [float(r.score) for r in results]
    rows = [[_e(s), _e(STATUS_TEXT.get(s, s)), str(n)] for s, n in sorted(status.items())]
    top = points_str(max(r.max_score for r in results)) if results else "n/a"
    lines = [f"<p>Output folder <code>{_e(out_dir)}</code>: <b>{len(results)}</b> submissions, "
             f"maximum score {_e(top)}.</p>"]
    if scores:
        lines.append(f"<p>Mean {statistics.fmean(scores):.2f}, median {statistics.median(scores):g}, "
                     f"min {min(scores):g}, max {max(scores):g}; full marks: "
                     f"{sum(r.score == r.max_score and r.status == 'ok' for r in results)}.</p>")
    written = [c for r in results for c in r.checks if c.function == WRITTEN_FUNCTION]
    if written:
        marked = sum(c.message != NOT_MARKED for c in written)
        lines.append(f"<p>Written answers (marked by hand): {marked} of {len(written)} marks entered; "
                     "the scores below include the marks entered so far.</p>")
    lines.append(_code_similarity_line(out_dir))
    lines.append(_table(["status", "meaning", "submissions"], rows, numeric={2}))
    return "\n".join(lines)


def _code_similarity_line(out_dir: Path) -> str:
    """A link to ``similarity/code.html`` (grader.similarity) with the flagged pairs' count, or ''."""
    try:
        rows = list(csv.DictReader(io.StringIO((out_dir / "similarity" / "code.csv").read_text("utf-8"))))
    except (OSError, ValueError, csv.Error):
        return ""
    flagged = sum(r.get("flagged") == "true" for r in rows)
    return (f'<p>Code similarity: {flagged} pair{"" if flagged == 1 else "s"} of students flagged, '
            '<a href="similarity/code.html">side by side</a> (every pair sharing code: similarity/code.csv).</p>')


def _functions_section(results: list[StudentResult], plot: bytes | None) -> str:
    rows = [[f"<code>{_e(fn)}</code>", f"{full} / {n}", f"{_bar(full / n if n else 0)} {_pct(full, n)}",
             f"{_bar(share)} {100 * share:.0f}%"] for fn, full, n, share in _function_rates(results)]
    return _img(plot, "pass rate per function") + _table(
        ["function", "every check passed", "share of students", "mean share of points"], rows, numeric={1})


def _checks_section(results: list[StudentResult], plot: bytes | None) -> str:
    rows = [[f"<code>{_e(fn)}</code>", f"<code>{_e(name)}</code>", f"{p} / {t}", f"{_bar(p / t if t else 0)} {_pct(p, t)}"]
            for fn, name, p, t in _check_rates(results)]
    return _img(plot, "pass rate per check") + _table(["function", "check", "passed", "rate"], rows, numeric={2})


def _mistakes_section(results: list[StudentResult]) -> str:
    found = mistake_students(results)
    if not found:
        return "<p>No diagnosed mistake.</p>"
    rows = []
    for fn, diagnosis, students in found:
        names = ", ".join(_id(s) for s in students[:MAX_NAMES])
        if len(students) > MAX_NAMES:
            names += f" <span class=\"muted\">and {len(students) - MAX_NAMES} more</span>"
        rows.append([f"<code>{_e(fn)}</code>", f"<code>{_e(diagnosis)}</code>", str(len(students)), names])
    return _table(["function", "diagnosed mistake", "students", "who"], rows, numeric={2})


def _not_graded_section(results: list[StudentResult]) -> str:
    bad = [r for r in results if r.status != "ok"]
    if not bad:
        return "<p>Every submission loaded and every call ran.</p>"
    rows = [[_id(r.student), f"<code>{_e(r.status)}</code>", _e(points_str(r.total)),
             f"<pre>{_e(r.message)}</pre>"] for r in sorted(bad, key=lambda r: (r.status, r.student))]
    return _table(["submission", "status", "score", "message"], rows, numeric={2})


def _tampering_section(results: list[StudentResult]) -> str:
    found = suspected_tampering(results)
    if not found:
        return "<p>No submission reported a change to the grader's harness.</p>"
    rows = [[_id(student), "<ul>" + "".join(f"<li><code>{_e(item)}</code></li>" for item in items) + "</ul>"]
            for student, items in found]
    return f"<p><b>{_e(TAMPERING_NOTE)}</b></p>" + _table(["submission", "detected"], rows)


def _timing_section(results: list[StudentResult], run: dict) -> str:
    timed = [(float(r.durations.get("total_s", 0.0)), r.student) for r in results if r.durations.get("total_s") is not None]
    if not timed:
        return "<p>No durations recorded.</p>"
    totals = [t for t, _ in timed]
    sandbox = [float(r.durations["sandbox_s"]) for r in results if r.durations.get("sandbox_s") is not None]
    rows = [["submissions timed", str(len(timed))],
            ["total (sum over submissions)", f"{sum(totals):.2f} s"],
            ["mean per submission", f"{statistics.fmean(totals):.2f} s"],
            ["median per submission", f"{statistics.median(totals):.2f} s"],
            ["max per submission", f"{max(totals):.2f} s ({_id(max(timed)[1])})"]]
    if sandbox:
        rows.append(["time in the sandbox (sum)", f"{sum(sandbox):.2f} s"])
    if isinstance(run.get("wall_s"), (int, float)):
        rows.append(["last run, start to end", f"{run['wall_s']:.2f} s ({_e(run.get('graded', '?'))} graded, "
                     f"{_e(run.get('resumed', '?'))} reused, {_e(run.get('workers', '?'))} workers)"])
    slow = sorted(timed, key=lambda ts: (-ts[0], ts[1]))[:SLOWEST]
    return (_table(["", "seconds"], rows) + '<p class="muted">Wall time per submission (intake, sandbox, '
            "checks); with several workers they overlap, so the run took less than their sum.</p><h3>Slowest submissions</h3>"
            + _table(["submission", "total"], [[_id(s), f"{t:.2f} s"] for t, s in slow], numeric={1}))


def _counted(values: list[str]) -> str:
    counts = Counter(values)
    if len(counts) == 1:
        return _e(next(iter(counts)))
    return "<br>".join(f"{_e(v)} <span class=\"muted\">({n} submissions)</span>" for v, n in sorted(counts.items()))


def _versions_section(results: list[StudentResult], summary: dict) -> str:
    names = sorted({k for r in results for k in r.versions})
    rows = [[_e(k), _counted([str(r.versions.get(k, "-")) for r in results])] for k in names]
    rows += [["rubric version", _counted([str(r.rubric.get("version")) for r in results])],
             ["rubric seed", _counted([str(r.rubric.get("seed")) for r in results])],
             ["rubric sha256", _counted([str(r.rubric.get("sha256")) for r in results])],
             ["isolation", _counted([str(r.sandbox.get("isolation", "not run")) for r in results])]]
    parts = [_table(["", "value"], rows)]
    if summary.get("limits"):
        parts.append("<h3>Sandbox limits of the last run</h3>" + _table(
            ["limit", "value"], [[f"<code>{_e(k)}</code>", _e(v)] for k, v in summary["limits"].items()], numeric={1}))
    if summary.get("intake_notes"):
        parts.append("<h3>Intake notes</h3><ul>" + "".join(f"<li>{_e(n)}</li>" for n in summary["intake_notes"]) + "</ul>")
    return "\n".join(parts)


def _run_record(out_dir: Path) -> dict:
    """``run.json`` (the last run's wall time), or ``{}``."""
    try:
        record = json.loads((out_dir / "run.json").read_text("utf-8"))
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


def build_report(out_dir: Path, plots: dict[str, bytes] | None = None) -> str:
    """The HTML text of the report on ``out_dir`` (see the module's docstring)."""
    out_dir = Path(out_dir)
    results = list(load_results(out_dir).values())
    summary = load_summary(out_dir)
    plots = render_plots(results) if plots is None else plots
    body = [
        ("overview", "Overview", _overview(results, out_dir)),
        ("scores", "Score histogram", _img(plots.get("scores"), "score histogram")),
        ("functions", "Pass rate per function", _functions_section(results, plots.get("functions"))),
        ("checks", "Pass rate per check", _checks_section(results, plots.get("checks"))),
        ("mistakes", "Most frequent diagnosed mistakes", _mistakes_section(results)),
        ("not-graded", "Failed to load, timed out, crashed", _not_graded_section(results)),
        ("tampering", "Suspected tampering (for the TA only: information, not a verdict)", _tampering_section(results)),
        ("timing", "Grading time", _timing_section(results, _run_record(out_dir))),
        ("versions", "Versions, rubric and seeds", _versions_section(results, summary)),
    ]
    toc = " · ".join(f'<a href="#{sid}">{_e(title)}</a>' for sid, title, _ in body)
    sections = "\n".join(f'<h2 id="{sid}">{_e(title)}</h2>\n{content}' for sid, title, content in body)
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; img-src data:; "
            "style-src 'unsafe-inline'\">"
            f"<title>Class report</title><style>{CSS}</style></head>\n<body>\n<h1>Class report</h1>\n"
            f"<p>{toc}</p>\n{sections}\n</body></html>\n")


def write_report(out_dir: Path, dest: Path | None = None, png_dir: Path | None = None) -> Path:
    """Write ``report.html`` (default: into ``out_dir``) atomically; with ``png_dir``, also each plot
    as ``report_<name>.png`` there (to look at them; the HTML does not need them)."""
    out_dir = Path(out_dir)
    results = list(load_results(out_dir).values())
    plots = render_plots(results)
    if png_dir is not None:
        for name, png in plots.items():
            write_atomic(Path(png_dir) / f"report_{name}.png", png)
    dest = Path(dest) if dest is not None else out_dir / "report.html"
    write_atomic(dest, build_report(out_dir, plots))
    return dest


def _main() -> None:  # python -m grader.exports.class_report OUT_DIR (until the CLI has a subcommand)
    import sys

    from grader.cli import fail

    if len(sys.argv) < 2:
        sys.exit(fail("usage: python -m grader.exports.class_report OUT_DIR [PNG_DIR]"))
    try:
        print(write_report(Path(sys.argv[1]), png_dir=Path(sys.argv[2]) if len(sys.argv) > 2 else None))
    except (OutputFolderError, OSError) as error:
        sys.exit(fail(error))


if __name__ == "__main__":
    _main()
