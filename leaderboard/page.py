"""The static leaderboard page: one PNG of per-episode curves per suite, and index.html with the tables.

Per suite the page shows the ranked contestants in a sortable table (click a header; `?sort=<header>`
and `&order=asc|desc` in the URL pre-sort every table that has that header), the references
(oracle, memoryless, chance) in a table of their own, never ranked, the curves with a suite-mean
panel first, the per-env tables and every agent's recorded model metadata (path, parameters,
decoding, commit), also shown as each row's tooltip.

Figures use matplotlib's object API with the Agg canvas (no pyplot global state, no display) and
omit the software-version metadata, so the same tables give byte-identical PNGs.
"""

from __future__ import annotations

import html
import math
import re
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from leaderboard.tables import SUITE_MEAN, SuiteTable, metadata_text, per_env_rows, ranking_rule, table_rows

__all__ = ["agent_colors", "plot_suite", "figure_name", "write_page"]

# Twelve distinct colours (matplotlib's tab10 without its grey and brown, plus four darker ones).
_PALETTE = [
    "#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf",
    "#e377c2", "#bcbd22", "#393b79", "#637939", "#ad494a", "#7b4173",
]  # fmt: skip
# References (oracle, memoryless, chance) are drawn in neutral colours, so a reference never looks like
# a contestant; a contestant's memoryless twin takes the contestant's colour (dashed) instead.
_REFERENCE_PALETTE = ["black", "#7f7f7f", "#8c564b", "#c49c94", "#525252", "#a5a5a5"]
_COLUMNS = 4


def agent_colors(tables: list[SuiteTable]) -> dict[str, str]:
    """One colour per agent label, the same in every suite's figure.

    Contestants take the palette in name order; a contestant's memoryless twin takes its colour; the
    other references take neutral colours, the plain `oracle` black.
    """
    entries = [entry for table in tables for entry in table.entries]
    contestants = sorted({entry.label for entry in entries if not entry.is_reference})
    colors = {label: _PALETTE[index % len(_PALETTE)] for index, label in enumerate(contestants)}
    twin_colors = {entry.memory_twin: colors[entry.label] for entry in entries if not entry.is_reference and entry.memory_twin}
    for entry in entries:
        if entry.is_reference and entry.key in twin_colors:
            colors.setdefault(entry.label, twin_colors[entry.key])
    references = sorted({entry.label for entry in entries if entry.label not in colors}, key=lambda label: (label != "oracle", label))
    colors.update({label: _REFERENCE_PALETTE[index % len(_REFERENCE_PALETTE)] for index, label in enumerate(references)})
    return colors


def figure_name(suite: str) -> str:
    """File name of a suite's figure (suite names may hold characters unsafe in URLs)."""
    return "curves-" + re.sub(r"[^A-Za-z0-9_.-]", "_", suite) + ".png"


def _draw_panel(axis, table: SuiteTable, panel: str, colors: dict[str, str]) -> None:
    """One panel: every agent's curve for `panel` (an env label or the suite mean) with its 95% band."""
    length = max(len(entry.curves.get(panel, [])) for entry in table.entries)
    for entry in table.entries:
        curve = entry.curves.get(panel)
        if not curve:
            continue
        episodes = [index + 1 for index, point in enumerate(curve) if point is not None]
        points = [point for point in curve if point is not None]
        style = dict(color=colors[entry.label], linestyle="-" if entry.role == "agent" else "--")
        axis.plot(episodes, [point.mean for point in points], marker="o", markersize=3, label=entry.label, **style)
        low, high = [point.low for point in points], [point.high for point in points]
        if table.curve_metric == "success":
            low, high = [max(value, 0.0) for value in low], [min(value, 1.0) for value in high]
        axis.fill_between(episodes, low, high, alpha=0.12, color=style["color"])
    title = panel
    normalised = panel == SUITE_MEAN and table.curve_metric == "regret"
    if panel == SUITE_MEAN and any(not label.endswith(f" x{length}") for label in table.env_labels):
        title = f"{SUITE_MEAN} (envs x{length})"  # only the envs with the most episodes
    axis.set_title(title + (" (normalised)" if normalised else ""), fontsize=9)
    axis.set_xlabel("episode", fontsize=8)
    ylabel = "success rate" if table.curve_metric == "success" else "regret per episode"
    axis.set_ylabel("score (0 chance, 1 oracle)" if normalised else ylabel, fontsize=8)
    axis.tick_params(labelsize=7)
    axis.set_xticks(range(1, length + 1))
    if table.curve_metric == "success":
        axis.set_ylim(-0.03, 1.03)
    axis.grid(alpha=0.3)


def plot_suite(table: SuiteTable, path: Path, colors: dict[str, str]) -> None:
    """A suite-mean panel, then one panel per env: x = episode, y = success rate or regret.

    The suite-mean panel averages success over the envs with the most episodes, or, for regret
    suites, the per-episode normalised score (1 = the oracle's regret, 0 = the zero reference's).
    One curve per agent with its 95% band; reference agents (oracle, memoryless, chance) are dashed.
    """
    panels = list(dict.fromkeys(label for entry in table.entries for label in entry.curves))
    panels.sort(key=lambda label: (label != SUITE_MEAN, table.env_labels.index(label) if label in table.env_labels else 0))
    rows = math.ceil(len(panels) / _COLUMNS)
    columns = min(_COLUMNS, len(panels))
    # At least two panels wide, so a one-env suite still gets a readable figure (and legend).
    width = max(3.2 * columns, 6.4)
    figure = Figure(figsize=(width, 2.4 * rows + 0.5), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(rows, columns, squeeze=False).ravel()
    for axis, panel in zip(axes[: len(panels)], panels, strict=True):
        _draw_panel(axis, table, panel, colors)
    for axis in axes[len(panels) :]:
        axis.set_visible(False)
    handles, labels = axes[0].get_legend_handles_labels()
    seen = dict(zip(labels, handles, strict=True))
    for axis in axes[1 : len(panels)]:
        for handle, label in zip(*axis.get_legend_handles_labels(), strict=True):
            seen.setdefault(label, handle)
    # About 1.7 inches per legend entry at font size 8 (a long name takes that much), so the legend
    # wraps into rows instead of running past a narrow figure's edges.
    columns = max(1, min(len(seen), 7, int(width / 1.7)))
    figure.legend(list(seen.values()), list(seen), loc="outside upper center", ncol=columns, fontsize=8)
    figure.savefig(path, dpi=80, metadata={"Software": None})


_STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5rem; color: #222; max-width: 1400px; }
h1 { margin-bottom: 0.2rem; }
table { border-collapse: collapse; font-size: 12px; margin: 0.5rem 0 1rem; }
th, td { border: 1px solid #ccc; padding: 3px 6px; text-align: right; white-space: nowrap; }
th { background: #f0f0f0; }
table.sortable th { cursor: pointer; }
table.sortable th[aria-sort="ascending"]::after { content: " \\25B2"; }
table.sortable th[aria-sort="descending"]::after { content: " \\25BC"; }
.agent, .role, .model { text-align: left; }
td.agent { font-weight: 600; }
div.scroll { overflow-x: auto; }
tr.reference td { color: #666; font-style: italic; }
img.curves { max-width: 100%; border: 1px solid #ddd; }
nav a { margin-right: 1rem; }
h3 { font-size: 1rem; margin: 0.6rem 0 0.2rem; }
"""

# Click a header to sort its table (again to reverse); `?sort=<header>&order=asc|desc` sorts on load.
# Cells sort by their leading number when both have one ("-" and text after numbers), else as text.
_SCRIPT = """
function cellKey(row, column) {
  const text = row.cells[column].textContent.trim();
  const number = parseFloat(text.replace(/,/g, ''));
  return isNaN(number) ? [1, text] : [0, number];
}
function sortTable(table, column, descending) {
  const body = table.tBodies[0];
  const rows = Array.from(body.rows);
  rows.sort((a, b) => {
    const [ka, kb] = [cellKey(a, column), cellKey(b, column)];
    if (ka[0] !== kb[0]) return ka[0] - kb[0];
    const order = ka[1] < kb[1] ? -1 : ka[1] > kb[1] ? 1 : 0;
    return descending ? -order : order;
  });
  rows.forEach(row => body.appendChild(row));
  Array.from(table.tHead.rows[0].cells).forEach((cell, index) =>
    cell.setAttribute('aria-sort', index === column ? (descending ? 'descending' : 'ascending') : 'none'));
}
document.querySelectorAll('table.sortable').forEach(table => {
  Array.from(table.tHead.rows[0].cells).forEach((cell, index) => cell.addEventListener('click', () =>
    sortTable(table, index, cell.getAttribute('aria-sort') === 'ascending')));
});
const query = new URLSearchParams(window.location.search);
if (query.get('sort')) {
  document.querySelectorAll('table.sortable').forEach(table => {
    const index = Array.from(table.tHead.rows[0].cells).findIndex(cell => cell.dataset.key === query.get('sort'));
    if (index >= 0) sortTable(table, index, query.get('order') === 'desc');
  });
}
"""


def _html_table(header: list[str], cells: list[list[str]], css_class: str, entries: list | None = None) -> str:
    """A table whose rows carry the agent's name, role and (as the tooltip) its model metadata."""
    agent_column = header.index("agent")
    # Text columns are left-aligned and styled by their header name; numbers stay right-aligned.
    classes = [f' class="{name}"' if name in ("agent", "role", "model") else "" for name in header]
    head = "".join(
        f'<th{css} data-key="{html.escape(text)}">{html.escape(text)}</th>' for css, text in zip(classes, header, strict=True)
    )
    by_label = {entry.label: entry for entry in entries or []}
    body = []
    for row in cells:
        entry = by_label.get(row[agent_column])
        role = entry.role if entry else "agent"
        cells_html = "".join(f"<td{css}>{html.escape(text)}</td>" for css, text in zip(classes, row, strict=True))
        reference = ' class="reference"' if entry is not None and entry.is_reference else ""
        title = f' title="{html.escape(metadata_text(entry.metadata))}"' if entry is not None else ""
        body.append(f'<tr data-agent="{html.escape(row[agent_column])}" data-role="{role}"{reference}{title}>{cells_html}</tr>')
    table = f'<table class="{css_class}"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'
    return f'<div class="scroll">{table}</div>'


def _section(table: SuiteTable) -> str:
    figure = figure_name(table.name)
    what = "success rate" if table.curve_metric == "success" else "regret"
    header, contestants = table_rows(table)
    _, references = table_rows(table, references=True)
    gain_header, gains = per_env_rows(table, memory_gain=True)
    metadata = [[entry.label, entry.role, metadata_text(entry.metadata)] for entry in table.entries]
    parts = [
        f'<section id="suite-{html.escape(table.name)}" data-suite="{html.escape(table.name)}">',
        f"<h2>{html.escape(table.name)}</h2>",
        f"<p>{html.escape(table.description)} {html.escape(ranking_rule(table))}</p>",
        _html_table(header, contestants, "ranking sortable", table.entries) if contestants else "<p>No contestant yet.</p>",
    ]
    if references:
        parts += ["<h3>References (not ranked)</h3>", _html_table(header, references, "references sortable", table.entries)]
    parts += [
        f'<figure><img class="curves" src="{figure}" alt="Per-episode {what} per agent, suite {html.escape(table.name)}">',
        f"<figcaption>Per-episode {what}, one curve per agent (mean and 95% band); suite mean first; references dashed."
        "</figcaption></figure>",
        f"<details><summary>Per env ({what})</summary>{_html_table(*per_env_rows(table), 'per-env sortable', table.entries)}"
        "</details>",
    ]
    if gains:
        parts.append(
            f"<details><summary>Per env: memory gain over the memoryless twin, same seeds ({what}; positive = memory helps)"
            f"</summary>{_html_table(gain_header, gains, 'memory-gain sortable', table.entries)}</details>"
        )
    parts += [
        f"<details><summary>Agents (model metadata)</summary>{_html_table(['agent', 'role', 'model'], metadata, 'metadata', table.entries)}"
        "</details>",
        "</section>",
    ]
    return "\n".join(parts)


def write_page(tables: list[SuiteTable], output_dir: Path) -> Path:
    """Write one figure per suite and `index.html` into `output_dir`; returns the page's path."""
    colors = agent_colors(tables)
    for table in tables:
        plot_suite(table, output_dir / figure_name(table.name), colors)
    links = " ".join(f'<a href="#suite-{html.escape(table.name)}">{html.escape(table.name)}</a>' for table in tables)
    page = "\n".join(
        [
            "<!doctype html>",
            '<html lang="en"><head><meta charset="utf-8"><title>icl-arena leaderboard</title>',
            f"<style>{_STYLE}</style></head><body>",
            "<h1>icl-arena leaderboard</h1>",
            "<p>Agents that learn in context across the episodes of a trial (the same hidden task every episode). "
            "Success rates: rate [95% Wilson interval]; means: mean ± half-width of the 95% Student-t interval over "
            "trials. <b>score (norm.)</b> and <b>IQM (norm.)</b>: each env's ranking metric mapped to 0 = the memoryless "
            "or chance reference and 1 = the oracle, then the mean and the interquartile mean of all trials with a "
            "stratified bootstrap interval. <b>memory gain</b>: the agent minus its memoryless twin on the same seeds "
            "(normalised; positive = memory helps). Click a header to sort. Data: "
            '<a href="leaderboard.json">json</a>, <a href="leaderboard.csv">csv</a>, '
            '<a href="leaderboard.md">markdown</a>.</p>',
            f"<nav>{links}</nav>",
            *(_section(table) for table in tables),
            f"<script>{_SCRIPT}</script>",
            "</body></html>",
            "",
        ]
    )
    path = output_dir / "index.html"
    path.write_text(page)
    return path
