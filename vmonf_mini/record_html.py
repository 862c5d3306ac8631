"""A recorded run as HTML: the labelled box a chapter shows it in, its tables and figures.

The records themselves (writing, reading, checking their provenance) are in
:mod:`vmonf_mini.records`; chapter 8 shows its recorded MNIST run with these helpers.

>>> table = html_table(["model", "accuracy"], [["<VMoNF>", 0.99]])  # cells are escaped
>>> table.count("<tr>"), "&lt;VMoNF&gt;" in table
(2, True)
"""

from __future__ import annotations

import html
from typing import Any, Mapping, Sequence

__all__ = ["record_box", "records_box", "html_table", "figure_html"]


def record_box(record: Mapping[str, Any], body_html: str) -> str:
    """HTML of a box labelled as a recorded run (hardware, date, commit, wall time) around ``body_html``.

    A record with incomplete provenance (:func:`~vmonf_mini.records.missing_provenance`) is
    refused with a ``ValueError``: the box would state what the record does not know.
    """
    _refuse_incomplete(record)
    p = record["provenance"]
    minutes = p["wall_seconds"] / 60
    title = (
        f"Recorded run, not this build: {html.escape(p['hardware'])}, {html.escape(p['date'])}, "
        f"commit {html.escape(p['commit'][:12])}, {minutes:.0f} min wall time"
    )
    footer = (
        f"Made by <code>{html.escape(p['command'])}</code> with torch {html.escape(p['torch'])}, "
        f"seeds {p['seeds']}; file <code>book/recorded/{html.escape(record['name'])}.json</code>."
    )
    return (
        f'<div class="admonition note recorded-run"><p class="admonition-title">{title}</p>'
        f"{body_html}<p>{footer}</p></div>"
    )


def records_box(records: Sequence[Mapping[str, Any]], body_html: str) -> str:
    """:func:`record_box` for several records shown together (one per seed, say): the title says
    how many runs and on what, the footer gives each record's date, commit, wall time, command
    and file. Refused, like :func:`record_box`, when any record lacks provenance (chapter 8).
    """
    if not records:
        raise ValueError("records_box needs at least one record")
    for record in records:
        _refuse_incomplete(record)
    hardware = sorted({r["provenance"]["hardware"] for r in records})
    title = (
        f"{len(records)} recorded run{'s' if len(records) > 1 else ''}, not this build: "
        f"{html.escape(', '.join(hardware))}"
    )
    lines = "".join(
        f"<li><code>book/recorded/{html.escape(r['name'])}.json</code>: "
        f"{html.escape(r['provenance']['date'])}, commit "
        f"{html.escape(r['provenance']['commit'][:12])}, "
        f"{r['provenance']['wall_seconds'] / 60:.0f} min wall time, torch "
        f"{html.escape(r['provenance']['torch'])}, made by "
        f"<code>{html.escape(r['provenance']['command'])}</code></li>"
        for r in records
    )
    return (
        f'<div class="admonition note recorded-run"><p class="admonition-title">{title}</p>'
        f"{body_html}<ul>{lines}</ul></div>"
    )


def _refuse_incomplete(record: Mapping[str, Any]) -> None:
    """A ``ValueError`` when ``record`` lacks provenance: a box would state what it does not know."""
    # imported here, not at the top: vmonf_mini.records re-exports this module's functions
    from .records import missing_provenance

    missing = missing_provenance(record)
    if missing:
        raise ValueError(
            f"record {record.get('name')!r} lacks provenance for its box: {missing}"
        )


def html_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A plain HTML table (cells are escaped; numbers as given)."""
    pad = ' style="padding: 0.15em 0.7em"'
    head = "".join(f"<th{pad}>{html.escape(str(h))}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f"<td{pad}>{html.escape(str(c))}</td>" for c in row) + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def figure_html(fig: Any, dpi: int = 90) -> str:
    """A matplotlib figure as an inline PNG ``<img>`` (closes the figure)."""
    import base64
    import io

    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    encoded = base64.b64encode(buffer.getvalue()).decode("ascii")
    return (
        f'<img alt="figure of the recorded run" src="data:image/png;base64,{encoded}"/>'
    )
