"""``study.html``: the claim, the conclusion and its rule, the measures per arm, the kind's
plots. One self-contained page in the analysis report's style and with its load check
(``data-rendered``, ``data-images``, ``data-errors`` on ``<body>``)."""

from __future__ import annotations

from typing import Any

from selfplay.analysis.render.common import escape, table
from selfplay.analysis.render.report import SCRIPT, STYLE
from selfplay.studies.kinds import KINDS

_CSS = {"replicated": "genuine", "not replicated": "artefact", "inconclusive": "inconclusive"}
_STATUS_CSS = {"holds": "genuine", "fails": "artefact", "unsure": "inconclusive"}


def render(study: dict[str, Any], arms: list[dict[str, Any]]) -> str:
    """The page for ``study`` (study.json's content); ``arms``: the logged series per arm and
    seed that the kind's plots draw."""
    title = f"selfplay study: {study['study']}" + (" (quick)" if study["quick"] else "")
    parts = [
        f"<h1>{escape(title)}</h1>",
        f"<p><b>Claim.</b> {escape(study['claim'])}</p>",
        f"<p class='note'><b>Source.</b> {escape(study['source'])}</p>",
        f"<p class='{_CSS[study['conclusion']]}' id='conclusion'><b>Conclusion: "
        f"{escape(study['conclusion'])}</b> ({len(study['seeds'])} seeds per arm"
        + (", toy sizes: checks the machinery, not the claim" if study["quick"] else "")
        + ")</p>",
        "<h2>Rule (fixed in the config before the run)</h2>",
        _rule_table(study),
        f"<p class='note'>{escape(study['rule']['statement'])}</p>",
        "<h2>Measures per arm (mean over seeds, 95% t interval)</h2>",
        _measures_table(study),
        _meanings(study),
        "<h2>Curves</h2>",
        *KINDS[study["kind"]].figures(arms),
        f"<p class='note'>Wall time {study['seconds']['wall']:.0f} s over "
        f"{len(study['calls'])} call(s); the arm runs took {study['seconds']['arm_runs']:.0f} s "
        f"in all, on {escape(study['machine']['processor'])} ({study['machine']['cpus']} "
        "CPUs). Every number above is in study.json beside this file.</p>",
    ]
    return (
        "<!DOCTYPE html><html><head><meta charset='utf-8'>"
        f"<title>{escape(title)}</title><style>{STYLE}</style>"
        f"<script>{SCRIPT}</script></head><body data-rendered='pending'>"
        + "\n".join(parts)
        + "</body></html>"
    )


def interval(summary: dict[str, Any] | None) -> str:
    """``mean [low, high]`` of a seed summary; the mean alone with one seed."""
    if summary is None:
        return "n/a"
    if summary["low"] is None:
        return f"{_short(summary['value'])} (1 seed)"
    return f"{_short(summary['value'])} [{_short(summary['low'])}, {_short(summary['high'])}]"


def _rule_table(study: dict[str, Any]) -> str:
    rows, css = [], []
    for c in study["rule"]["conditions"]:
        s = c["summary"]
        rows.append(
            [
                c["text"],
                interval(s),
                _short(s["min_detectable"]) if s and s["min_detectable"] is not None else "n/a",
                c["status"],
            ]
        )
        css.append(_STATUS_CSS[c["status"]])
    return table(["condition", "measured", "min. detectable", "status"], rows, cls=css)


def _measures_table(study: dict[str, Any]) -> str:
    """A row per measure, a column per arm."""
    rows = []
    for name in study["measures"]:
        cells = [name]
        for arm in study["arms"]:
            m = arm["measures"][name]
            text = interval(m["summary"])
            if m["undefined"]:
                text += f" ({m['undefined']} undefined)"
            cells.append(text)
        rows.append(cells)
    return table(["measure", *(arm["name"] for arm in study["arms"])], rows)


def _meanings(study: dict[str, Any]) -> str:
    items = "".join(
        f"<li><code>{escape(k)}</code>: {escape(v)}</li>" for k, v in study["measures"].items()
    )
    return f"<ul class='note'>{items}</ul>"


def _short(x: float) -> str:
    """A number to about three significant digits, without trailing zeros."""
    if x != 0 and abs(x) < 0.01:
        return f"{x:.2g}"
    if abs(x) >= 100:
        return f"{x:,.0f}"
    digits = 1 if abs(x) >= 10 else 3
    return f"{x:.{digits}f}".rstrip("0").rstrip(".")


def terminal_table(study: dict[str, Any]):
    """The rule's conditions as a rich table, for the terminal."""
    from rich.table import Table

    out = Table(title=f"{study['study']}: {study['conclusion']}")
    for column in ("condition", "measured (95% t interval)", "min. detectable", "status"):
        out.add_column(column, justify="left" if column == "condition" else "right")
    for c in study["rule"]["conditions"]:
        s = c["summary"]
        mde = s["min_detectable"] if s else None
        out.add_row(c["text"], interval(s), _short(mde) if mde is not None else "n/a", c["status"])
    return out
