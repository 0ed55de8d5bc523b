"""The report as one self-contained HTML file: inline CSS, figures as inline base64 PNGs, and a few lines
of optional inline JavaScript (sorting the summary table). It opens offline: it names no URL at all.

Sections are built in order by `SECTIONS`; each builder returns a `Section` or None when its data is
absent. Features that add data to the store add their section with `register_section` — the tuner's
traces (incumbent against compute) and the selector's held-out table join this way when they land.
"""

from __future__ import annotations

import base64
import html
import io
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from lrcontrol.report import figures, summary_figures
from lrcontrol.report.data import ReportData

#: progress callback: (steps done, steps in all, what is being drawn)
Progress = Callable[[int, int, str], None]


@dataclass
class Section:
    id: str
    title: str
    body: str  # HTML
    figures: int = 0  # how many figures the section holds (the browser test checks they render)
    children: list[Section] = field(default_factory=list)


@dataclass
class Context:
    data: ReportData
    progress: Progress
    done: int = 0
    total: int = 1
    dpi: int = 110

    def step(self, what: str) -> None:
        self.done += 1
        self.progress(self.done, self.total, what)


def figure_html(fig: Any, alt: str, dpi: int = 110) -> str:
    """A matplotlib figure as an inline <img> (PNG, base64): dense curves stay small, unlike SVG paths."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    encoded = base64.b64encode(buffer.getvalue()).decode("ascii")
    width = round(fig.get_figwidth() * 96)  # CSS pixels at the figure's own size, crisp on 1.15× screens
    return (
        f'<figure class="fig"><img src="data:image/png;base64,{encoded}" alt="{html.escape(alt)}" '
        f'style="max-width:100%;width:{width}px"></figure>'
    )


def _number(value: Any, digits: int = 3) -> tuple[str, str]:
    """(text, sort key) for a table cell; missing and infinite values sort last."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–", "inf"
    return f"{value:.{digits}f}", repr(float(value))


def summary_section(ctx: Context) -> Section:
    data, summary = ctx.data, ctx.data.summary
    columns = [
        ("method", "the method: its spec without the LR"),
        ("tasks", "tasks it ran on"),
        ("runs", "runs in the store (LR grid × seeds × tasks)"),
        ("mean regret ↓", "normalised regret at the best LR, mean over tasks"),
        (
            "IQM regret ↓",
            f"interquartile mean of the regret over tasks and seeds, [{summary['confidence']:.0%} stratified "
            "bootstrap interval]",
        ),
        ("avg rank ↓", "mean rank over tasks"),
        ("profile ↑", f"area under the performance profile up to τ = {summary['tau_max']:g}"),
        ("diverged %", "share of its runs that diverged, grid included"),
        ("width ↑", f"LRs within {summary['within_percent']:g} % of the task's best (robustness)"),
        ("cost/run", "full-run equivalents per run (LR-finder steps included)"),
        ("grid cost", "full-run equivalents to find its best LR (one seed of the whole grid)"),
        ("s/run", "wall-clock seconds per run"),
    ]
    head = "".join(f'<th title="{html.escape(tip)}">{html.escape(name)}</th>' for name, tip in columns)
    body = []
    for row in summary["per_method"]:
        colour = data.colours[row["method"]]
        cells = [
            (_method_cell(row["method"], colour), row["method"]),
            (str(row["n_tasks"]), str(row["n_tasks"])),
            (str(row["n_runs"]), str(row["n_runs"])),
            _number(row["mean_regret"]),
            (
                f"{_number(row['iqm_regret'])[0]} <small>[{_number(row['iqm_ci_low'])[0]}, "
                f"{_number(row['iqm_ci_high'])[0]}]</small>",
                _number(row["iqm_regret"])[1],
            ),
            _number(row["average_rank"], 2),
            _number(row["profile_area"]),
            _number(None if row["diverged_share"] is None else 100 * row["diverged_share"], 0),
            _number(row["robustness_width"], 1),
            _number(row["cost_per_run"], 2),
            _number(row["grid_cost"], 2),
            _number(row["wall_time_per_run"], 2),
        ]
        body.append(
            "<tr>" + "".join(f'<td data-sort="{html.escape(key)}">{text}</td>' for text, key in cells) + "</tr>"
        )
    sbs = summary["sbs"]["method"]
    note = (
        f"<p>{summary['n_runs']} runs on {len(summary['tasks'])} task(s). Regret: 0 = the best run on the task, "
        "1 = the untrained model (else the worst run) or diverged. Single best solver: "
        f"<b>{html.escape(sbs or '–')}</b>. Hover a column for its meaning; click it to sort.</p>"
    )
    table = f'<div class="scroll"><table class="sortable"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table></div>'
    ctx.step("summary table")
    return Section("summary", "Summary", note + table)


def _best_lr_table(data: ReportData, task: str) -> str:
    rows = []
    for method in data.methods:
        row = data.task_summary(task)["methods"].get(method)
        if row is None:
            continue
        lr = "–" if row["best_lr"] is None else f"{row['best_lr']:g}"
        median = "diverged" if row["median"] is None or not math.isfinite(row["median"]) else f"{row['median']:.4g}"
        rows.append(
            f"<tr><td>{_method_cell(method, data.colours[method])}</td>"
            f"<td>{lr}</td><td>{median}</td><td>{row['n_failed']}/{row['n_seeds']}</td><td>{row['rank']:g}</td></tr>"
        )
    info = data.task_info(task)
    head = f"<tr><th>method</th><th>best LR</th><th>final {html.escape(info['metric'])}</th><th>diverged</th><th>rank</th></tr>"
    return f'<table class="small"><thead>{head}</thead><tbody>{"".join(rows)}</tbody></table>'


def task_sections(ctx: Context) -> Section:
    children = []
    for task in ctx.data.tasks:
        fig = figures.task_curves(ctx.data, task)
        body = figure_html(fig, f"{task}: training loss, validation metric and LR per step", ctx.dpi)
        body += _best_lr_table(ctx.data, task)
        children.append(Section(f"task-{_slug(task)}", figures.task_label(task), body, figures=1))
        ctx.step(task)
    intro = (
        "<p>Each method at its best LR on the task: the median over seeds (line) and the interquartile band. "
        "The training loss is smoothed (an exponential moving average over 5 % of the steps). "
        "The LR panel shows the LR the controller set; dashed, the effective step size where an LR-free "
        "optimizer scales it (d·lr for D-Adaptation and Prodigy). Dotted vertical lines: a seed diverged.</p>"
    )
    return Section("tasks", "Per task: what each controller did", intro, children=children)


def sensitivity_section(ctx: Context) -> Section:
    fig = figures.sensitivity_grid(ctx.data)
    ctx.step("LR sensitivity")
    intro = (
        "<p>DeepOBS-style LR sensitivity: the final validation metric (median and IQR over seeds) against the "
        "initial LR. A flat line is a method that does not need its LR tuned; a red ✕ marks seeds that diverged "
        "(on the axis edge when every seed did).</p>"
    )
    return Section("sensitivity", "LR sensitivity", intro + figure_html(fig, "LR sensitivity", ctx.dpi), figures=1)


def across_section(ctx: Context) -> Section:
    parts, count = [], 0
    drawers = [
        ("profiles", "Performance profiles", summary_figures.performance_profiles),
        ("heatmap", "Rank per task", summary_figures.rank_heatmap),
        ("regret", "Normalised regret", summary_figures.regret_distributions),
        ("cost", "Quality against compute", summary_figures.cost_quality),
    ]
    if ctx.data.all_diverged:
        ctx.done += len(drawers) - 1
        ctx.step("across tasks")
        body = "<p>Every run diverged: there is no score to compare across tasks. Widen the LR grid downwards.</p>"
        return Section("across", "Across tasks", body)
    for anchor, title, draw in drawers:
        parts.append(f'<h3 id="{anchor}">{title}</h3>' + figure_html(draw(ctx.data), title, ctx.dpi))
        count += 1
        ctx.step(title.lower())
    return Section("across", "Across tasks", "".join(parts), figures=count)


def _method_cell(method: str, colour: str) -> str:
    """A method's colour swatch (the same colour as in every figure) and its spec, full spec on hover."""
    return (
        f'<span class="swatch" style="background:{colour}"></span>'
        f'<span title="{html.escape(method)}">{html.escape(figures.short(method, 60))}</span>'
    )


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in text).strip("-").lower()


#: optional sections: builder(ctx) → Section, or None when the store has no data for it
OPTIONAL_SECTIONS: list[Callable[[Context], Section | None]] = []


def register_section(builder: Callable[[Context], Section | None]) -> Callable[[Context], Section | None]:
    """Add a section after the built-in ones (the tuner's traces, the selector's table). The builder
    returns None when its data is absent, so a report of a plain sweep shows no empty section."""
    OPTIONAL_SECTIONS.append(builder)
    return builder


@register_section
def tuning_section(ctx: Context) -> Section | None:
    """Each tune's incumbent against the compute spent (present when the store has a tuner's trials)."""
    from lrcontrol.report import tuning

    by_task = tuning.traces(ctx.data)
    if not by_task:
        return None
    ctx.total += 1
    fig = tuning.figure(ctx.data, by_task)
    ctx.step("tuning traces")
    intro = (
        "<p>Each tune (<code>lrcontrol tune</code>): the best final validation metric among its full-budget "
        "trials so far (the line), against the compute it had spent in full-run equivalents (a promoted trial "
        "counts only its new steps); every trial as a dot, hollow when it ran at a lower budget. One line per "
        "tune and seed, in the tuned method's colour.</p>"
    )
    return Section("tuning", "Tuning traces", intro + figure_html(fig, "tuning traces", ctx.dpi), figures=1)


# The selector's held-out table (issue 12) registers here the same way when the selector lands.

SECTIONS = [summary_section, task_sections, sensitivity_section, across_section]

CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#222;background:#fff}
main{max-width:1400px;margin:0 auto;padding:1rem 2rem 4rem}
nav{position:sticky;top:0;background:#f7f7f7;border-bottom:1px solid #ddd;padding:.5rem 2rem;z-index:1}
nav a{margin-right:1.2rem;color:#1f4e99;text-decoration:none;font-weight:600}
h1{font-size:1.6rem;margin:.8rem 0 .2rem} h2{margin-top:2.4rem;border-bottom:2px solid #eee}
h3{margin:1.6rem 0 .4rem} .meta{color:#666;margin:0 0 1rem}
table{border-collapse:collapse;font-size:.82rem;margin:.6rem 0}
.scroll{overflow-x:auto} td small{color:#666}
th,td{padding:.28rem .45rem;border-bottom:1px solid #e5e5e5;text-align:right;white-space:nowrap}
th:first-child,td:first-child{text-align:left} th{background:#fafafa;cursor:pointer;user-select:none}
table.small{font-size:.8rem} table.small th{cursor:default}
th.asc::after{content:" ▲"} th.desc::after{content:" ▼"}
.swatch{display:inline-block;width:.8em;height:.8em;border-radius:2px;margin-right:.45em;vertical-align:-.05em}
figure.fig{margin:.4rem 0} figure.fig img{height:auto;display:block}
details summary{cursor:pointer;font-weight:600;font-size:1.05rem;margin:.6rem 0}
"""

# Optional: without JavaScript the table keeps the summary's order (best mean regret first).
SORT_JS = """
document.querySelectorAll("table.sortable th").forEach(function (th, col) {
  th.addEventListener("click", function () {
    var body = th.closest("table").tBodies[0], asc = !th.classList.contains("asc");
    th.parentNode.querySelectorAll("th").forEach(function (h) { h.classList.remove("asc", "desc"); });
    th.classList.add(asc ? "asc" : "desc");
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var x = a.cells[col].dataset.sort, y = b.cells[col].dataset.sort;
      var nx = parseFloat(x), ny = parseFloat(y);
      var c = (isNaN(nx) || isNaN(ny)) ? x.localeCompare(y) : nx - ny;
      return asc ? c : -c;
    });
    rows.forEach(function (r) { body.appendChild(r); });
  });
});
"""


def _render(section: Section, level: int = 2) -> str:
    heading = f'<h{level} id="{section.id}">{html.escape(section.title)}</h{level}>'
    inner = section.body + "".join(_render(child, level + 1) for child in section.children)
    return f'<section data-section="{section.id}" data-figures="{section.figures}">{heading}{inner}</section>'


def render(data: ReportData, progress: Progress | None = None, title: str | None = None) -> str:
    """The whole report as one HTML string."""
    ctx = Context(data, progress or (lambda done, total, what: None))
    ctx.total = 1 + len(data.tasks) + 1 + 4
    sections = [build(ctx) for build in SECTIONS]
    sections += [s for s in (build(ctx) for build in OPTIONAL_SECTIONS) if s is not None]
    nav = "".join(f'<a href="#{s.id}">{html.escape(s.title.split(":")[0])}</a>' for s in sections)
    import lrcontrol

    title = title or f"lrcontrol report: {data.store.name}"
    meta = (
        f"{data.n_runs} runs · {len(data.tasks)} task(s) · {len(data.methods)} method(s) · "
        f"store {html.escape(str(data.store))} · lrcontrol {lrcontrol.__version__}"
    )
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(title)}</title><style>{CSS}</style></head><body>"
        f'<nav>{nav}</nav><main><h1>{html.escape(title)}</h1><p class="meta">{meta}</p>'
        + "".join(_render(s) for s in sections)
        + f"</main><script>{SORT_JS}</script></body></html>"
    )
