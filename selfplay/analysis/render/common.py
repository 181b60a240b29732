"""What every report section draws with: HTML escaping and tables, number formatting, and
matplotlib figures rendered to embedded PNG ``<img>`` tags (matplotlib is imported only when
a figure is made)."""

from __future__ import annotations

import base64
import html
import io
import math
from typing import Any

import numpy as np

ROLLING = 10
"""Steps in the rolling mean drawn over per-step curves."""


# -- text and tables ------------------------------------------------------------------------


def escape(text: Any) -> str:
    """``text`` as HTML text (``str`` of it, escaped)."""
    return html.escape(str(text))


def number(x: float | None) -> str:
    """``x`` to three decimals; "n/a" for None."""
    return "n/a" if x is None else f"{x:.3f}"


def percent(x: float | None, digits: int = 1) -> str:
    """``x`` as a percentage; "n/a" for None or NaN."""
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}%}"


def estimate(e: dict[str, float], digits: int = 3) -> str:
    """An estimate (``{"value", "low", "high"}``) as ``value [low, high]``."""
    return f"{e['value']:.{digits}f} [{e['low']:.{digits}f}, {e['high']:.{digits}f}]"


def table(
    headers: list[str], rows: list[list[Any]], *, cls: list[str] | None = None, table_id: str = ""
) -> str:
    """An HTML table; the first column and text cells left-aligned, numbers right-aligned.
    ``cls``: a CSS class per row; ``table_id``: the table's ``id``."""
    head = "".join(
        f'<th class="{"l" if i == 0 else ""}">{escape(h)}</th>' for i, h in enumerate(headers)
    )
    body = []
    for k, row in enumerate(rows):
        css = f' class="{cls[k]}"' if cls else ""
        cells = "".join(
            f'<td class="{"l" if i == 0 or isinstance(c, str) and not _numeric(c) else ""}">'
            f"{escape(c)}</td>"
            for i, c in enumerate(row)
        )
        body.append(f"<tr{css}>{cells}</tr>")
    ident = f' id="{table_id}"' if table_id else ""
    return f"<table{ident}><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _numeric(text: str) -> bool:
    return bool(text) and (text[0].isdigit() or text[0] in "+-.")


# -- figures --------------------------------------------------------------------------------


def figure(rows: int = 1, cols: int = 1, width: float = 10, height: float = 3.2):
    """A matplotlib figure of ``rows`` x ``cols`` axes (always a 2-D array), ``height`` a row."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(rows, cols, figsize=(width, height * rows), squeeze=False)
    return fig, axes


def grid(panels: int, cols: int = 4):
    """A figure of small panels, ``cols`` a row; the unused ones hidden."""
    fig, axes = figure(max(1, math.ceil(panels / cols)), cols, width=12, height=2.6)
    for ax in axes.flat[panels:]:
        ax.axis("off")
    return fig, axes


def png(fig) -> str:
    """``fig`` rendered to PNG, closed, and embedded in an ``<img>`` tag as a ``data:`` URL."""
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    data = base64.b64encode(buffer.getvalue()).decode()
    return f'<img alt="plot" src="data:image/png;base64,{data}">'


def rolling(values: list[float]) -> np.ndarray:
    """The trailing mean over ``ROLLING`` points (over fewer at the start)."""
    values = np.asarray(values, dtype=float)
    if values.size < ROLLING:
        return values
    kernel = np.ones(ROLLING) / ROLLING
    head = [values[: i + 1].mean() for i in range(ROLLING - 1)]
    return np.concatenate([head, np.convolve(values, kernel, mode="valid")])


def curve(ax, steps, values, label, raw: bool = True) -> None:
    """A per-step curve on ``ax``: its rolling mean, and (``raw``) the values faintly."""
    if not steps:
        return
    line = ax.plot(steps, rolling(values), label=label)[0]
    if raw:
        ax.plot(steps, values, color=line.get_color(), alpha=0.2, linewidth=0.8)
