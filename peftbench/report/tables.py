"""Render a report table as Markdown, LaTeX (booktabs), CSV or HTML.

A `Table` is already aggregated (report.py builds it): rows of `Cell`s keyed by column. Here only
text: fixed decimals per column, the best value per column in bold and the second best underlined,
a dagger on cells with fewer runs than expected. Output is deterministic, so it diffs and golden-tests.
"""

from __future__ import annotations

import csv
import html
import io
from dataclasses import dataclass, field

FORMATS = ("md", "latex", "csv", "html")


@dataclass
class Column:
    key: str  # stable id, e.g. "glue/mrpc:f1", "avg", "params"
    header: str
    decimals: int = 1
    better: str = "max"  # "max", "min", or "" (never highlighted)
    per_seed: bool = False  # shows spread and run count


@dataclass
class Cell:
    value: float  # what the cell shows: the mean over runs, or a single figure
    spread: float | None = None  # std (or CI half-width) over runs; None for one run
    n: int = 1
    text: str = ""  # shown instead of the value (e.g. a range "2.0K–4.1K")
    short: bool = False  # fewer runs than expected


@dataclass
class Table:
    row_keys: list[str]  # e.g. ["method"] or ["model", "method"]
    columns: list[Column]
    rows: list[tuple[tuple, dict[str, Cell]]]  # (row key values, column key -> cell), sorted
    notes: list[str] = field(default_factory=list)
    signed: bool = False  # a difference table: "+1.2"
    highlight: bool = True


def ranks(table: Table) -> dict[tuple[int, str], int]:
    """(row index, column key) -> 1 for the best value of its column, 2 for the second best (only
    when a column has three or more distinct values). Ties share a rank; values compare as shown."""
    out: dict[tuple[int, str], int] = {}
    if not table.highlight:
        return out
    for col in table.columns:
        if not col.better:
            continue
        shown = {i: round(cells[col.key].value, col.decimals) for i, (_, cells) in enumerate(table.rows)
                 if col.key in cells}
        distinct = sorted(set(shown.values()), reverse=col.better == "max")
        if len(distinct) < 2:
            continue
        for i, value in shown.items():
            if value == distinct[0]:
                out[i, col.key] = 1
            elif value == distinct[1] and len(distinct) >= 3:
                out[i, col.key] = 2
    return out


def _number(cell: Cell, col: Column, signed: bool) -> str:
    if cell.text:
        return cell.text
    return f"{cell.value:+.{col.decimals}f}" if signed else f"{cell.value:.{col.decimals}f}"


def _text_cell(cell: Cell | None, col: Column, rank: int, signed: bool, bold: str, under: tuple) -> str:
    """Markdown and HTML cells: '**71.0** ± 1.4 (n=2)†'."""
    if cell is None:
        return "–"
    value = _number(cell, col, signed)
    value = f"{bold}{value}{bold}" if rank == 1 else f"{under[0]}{value}{under[1]}" if rank == 2 else value
    if cell.spread is not None:
        value += f" ± {cell.spread:.{col.decimals}f}"
    if col.per_seed:
        value += f" (n={cell.n})"
    return value + ("†" if cell.short else "")


def _label(table: Table, key: tuple) -> str:
    return " / ".join(str(k) for k in key)


def to_markdown(table: Table, failed: list[str]) -> str:
    rank = ranks(table)
    header = [" / ".join(table.row_keys), *(c.header for c in table.columns)]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] + ["---:"] * len(table.columns)) + "|"]
    for i, (key, cells) in enumerate(table.rows):
        values = [_text_cell(cells.get(c.key), c, rank.get((i, c.key), 0), table.signed, "**", ("<u>", "</u>"))
                  for c in table.columns]
        lines.append("| " + " | ".join([_label(table, key), *values]) + " |")
    blocks = ["\n".join(lines)]
    if table.notes:
        blocks.append("\n".join(table.notes))
    if failed:
        blocks.append("\n".join(failed))
    return "\n\n".join(blocks) + "\n"


_LATEX_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                  "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
                  "±": r"$\pm$", "–": "--", "†": r"$^\dagger$", "×": r"$\times$", "÷": r"$\div$",
                  "−": "$-$"}


def latex_escape(text: str) -> str:
    return "".join(_LATEX_SPECIAL.get(ch, ch) for ch in str(text))


def _latex_cell(cell: Cell | None, col: Column, rank: int, signed: bool) -> str:
    if cell is None:
        return "--"
    value = latex_escape(_number(cell, col, signed))
    value = rf"\textbf{{{value}}}" if rank == 1 else rf"\underline{{{value}}}" if rank == 2 else value
    if cell.spread is not None:
        value += rf"$_{{\pm {cell.spread:.{col.decimals}f}}}$"
    return value + (r"$^\dagger$" if cell.short else "")


def to_latex(table: Table, failed: list[str]) -> str:
    """A booktabs `tabular`, ready for `\\input{}` inside a table float; the notes below it in a
    `\\linewidth` minipage, so they wrap at the column's width instead of widening the table."""
    rank = ranks(table)
    lines = [r"\begin{tabular}{l" + "r" * len(table.columns) + "}", r"\toprule",
             " & ".join(latex_escape(h) for h in [" / ".join(table.row_keys), *(c.header for c in table.columns)])
             + r" \\", r"\midrule"]
    for i, (key, cells) in enumerate(table.rows):
        values = [_latex_cell(cells.get(c.key), c, rank.get((i, c.key), 0), table.signed) for c in table.columns]
        lines.append(" & ".join([latex_escape(_label(table, key)), *values]) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    if table.notes:
        lines += [r"\par\smallskip", r"\begin{minipage}{\linewidth}\footnotesize\raggedright",
                  *(latex_escape(n) + r"\par" for n in table.notes), r"\end{minipage}"]
    lines += [f"% {line}" for line in failed]
    return "\n".join(lines) + "\n"


def to_csv(table: Table, failed: list[str]) -> str:
    """One column per row key, then per column its value; seed-aggregated columns add `std` and `n`.
    Plain numbers at the column's decimals, empty where there is no value. Failed runs: not here."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    header = list(table.row_keys)
    for c in table.columns:
        header += [c.header, f"{c.header} std", f"{c.header} n"] if c.per_seed else [c.header]
    writer.writerow(header)
    for key, cells in table.rows:
        row = list(key)
        for c in table.columns:
            cell = cells.get(c.key)
            row.append("" if cell is None else _number(cell, c, table.signed))
            if c.per_seed:
                spread = None if cell is None else cell.spread
                row += ["" if spread is None else f"{spread:.{c.decimals}f}", "" if cell is None else cell.n]
        writer.writerow(row)
    return out.getvalue()


def to_html(table: Table, failed: list[str]) -> str:
    rank = ranks(table)
    esc = html.escape
    head = "".join(f"<th>{esc(h)}</th>" for h in [" / ".join(table.row_keys), *(c.header for c in table.columns)])
    lines = ['<table class="peftbench">', f"<thead><tr>{head}</tr></thead>", "<tbody>"]
    for i, (key, cells) in enumerate(table.rows):
        values = [esc(_text_cell(cells.get(c.key), c, rank.get((i, c.key), 0), table.signed, "\0", ("\1", "\2")))
                  .replace("\0", "<b>", 1).replace("\0", "</b>", 1).replace("\1", "<u>").replace("\2", "</u>")
                  for c in table.columns]
        lines.append(f"<tr><td>{esc(_label(table, key))}</td>" + "".join(f'<td align="right">{v}</td>'
                                                                           for v in values) + "</tr>")
    lines += ["</tbody>", "</table>"]
    lines += [f"<p>{esc(n)}</p>" for n in table.notes]
    if failed:
        lines += [f"<p>{esc(failed[0])}</p>", "<ul>", *(f"<li>{esc(f.removeprefix('- '))}</li>" for f in failed[1:]),
                  "</ul>"]
    return "\n".join(lines) + "\n"


RENDERERS = {"md": to_markdown, "latex": to_latex, "csv": to_csv, "html": to_html}
