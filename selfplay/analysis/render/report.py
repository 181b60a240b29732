"""The analysis report: one self-contained HTML file, plots embedded as PNG data.

Nothing is fetched when it is opened: styles and the small script are inline, each plot is
a matplotlib figure rendered to PNG and embedded as a ``data:`` URL. The script records
script errors and, once the page has loaded, whether every plot decoded, on ``<body>``
(``data-rendered="ok"``, ``data-images``, ``data-errors``): the test opens the page in
headless Chromium and reads them back. The sections are drawn by their own modules, in the
order ``write_report`` lists them.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from selfplay.analysis.reading import per_level_accuracy
from selfplay.analysis.render.aha import aha_section
from selfplay.analysis.render.artefacts import artefacts_section
from selfplay.analysis.render.calibration import calibration_section
from selfplay.analysis.render.common import escape
from selfplay.analysis.render.conclusions import conclusions_section
from selfplay.analysis.render.controls import controls_section
from selfplay.analysis.render.hacking import hacking_section
from selfplay.analysis.render.passk import passk_section
from selfplay.analysis.render.play import selfplay_section
from selfplay.analysis.render.training import training_section

if TYPE_CHECKING:
    import pandas as pd

STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
h1 { font-size: 1.6em; } h2 { margin-top: 2em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: .8em 0; font-size: 13px; }
th, td { border: 1px solid #ddd; padding: 3px 7px; text-align: right; }
th { background: #f4f4f4; } td.l, th.l { text-align: left; }
.elicited { background: #dbeafe; } .newly-acquired { background: #dcfce7; }
.not-learned { background: #f3f4f6; } .inconclusive { background: #fef9c3; }
.artefact { background: #fee2e2; } .genuine { background: #dcfce7; }
pre { background: #f8f8f8; padding: .6em; white-space: pre-wrap; font-size: 12px; }
img { max-width: 100%; } .note { color: #555; font-size: 13px; }
.bad { background: #fee2e2; padding: .4em .6em; }
"""

SCRIPT = """
(function () {
  var errors = [];
  window.addEventListener('error', function (e) {
    errors.push(String(e.message));
    document.body.setAttribute('data-errors', String(errors.length));
  });
  window.addEventListener('load', function () {
    var images = Array.prototype.slice.call(document.images);
    var decoded = images.filter(function (i) { return i.complete && i.naturalWidth > 0; });
    var body = document.body;
    body.setAttribute('data-images', String(images.length));
    body.setAttribute('data-images-ok', String(decoded.length));
    body.setAttribute('data-errors', String(errors.length));
    body.setAttribute('data-rendered',
      decoded.length === images.length && errors.length === 0 ? 'ok' : 'failed');
    var box = document.getElementById('conclusion-filter');
    if (box) box.addEventListener('input', function () {
      var text = box.value.toLowerCase();
      document.querySelectorAll('#conclusions tbody tr').forEach(function (row) {
        row.style.display = row.textContent.toLowerCase().indexOf(text) >= 0 ? '' : 'none';
      });
    });
  });
})();
"""


def write_report(
    path: Path,
    summary: dict,
    run_dir: Path,
    train: list[dict],
    probe: dict,
    per_level: pd.DataFrame | None = None,
) -> Path:
    """Render the report for ``summary`` to ``path`` (written atomically); return ``path``.

    ``train``: the training records of ``metrics.jsonl``; ``probe``: the probe series
    (``reading.probe_series``); ``per_level``: ``reading.per_level_accuracy`` of the run,
    read here when not given.
    """
    from selfplay.checkpoints import write_text_atomic

    if per_level is None:
        per_level = per_level_accuracy(run_dir)
    sections = _sections(summary, run_dir, train, probe, per_level)
    page = (
        "<!DOCTYPE html><html><head><meta charset='utf-8'>"
        f"<title>selfplay analysis: {escape(run_dir.name)}</title><style>{STYLE}</style>"
        f"<script>{SCRIPT}</script></head><body data-rendered='pending'>"
        + "\n".join(sections)
        + "<h2>Data</h2><p class='note'>Every number above is in summary.json beside this file."
        "</p></body></html>"
    )
    write_text_atomic(path, page)
    return path


def _sections(
    summary: dict, run_dir: Path, train: list[dict], probe: dict, per_level: pd.DataFrame
) -> list[str]:
    """The page's parts in order, each present when the summary has its data."""
    t = summary["thresholds"]
    sections = [
        f"<h1>selfplay analysis: {escape(run_dir.name)}</h1>",
        f'<p class="note">{escape(summary["run"])} · written {escape(summary["written"])} · '
        f"{summary['training']['steps']} training steps</p>",
    ]
    sections += _skipped_section(summary.get("skipped", []))
    if "conclusions" in summary:
        sections += conclusions_section(summary, t)
    sections += training_section(summary, train, per_level)
    if summary.get("selfplay"):
        sections += selfplay_section(summary["selfplay"])
    if "evals" in summary:
        sections += passk_section(summary)
    sections += artefacts_section(summary, probe, t)
    sections += aha_section(summary["aha"], t)
    if summary.get("hacking"):
        sections += hacking_section(summary["hacking"])
    if summary.get("calibration"):
        sections += calibration_section(summary["calibration"])
    if summary["controls"]:
        sections += controls_section(summary, probe)
    return sections


def _skipped_section(skipped: list[dict]) -> list[str]:
    """A warning naming what the analysis could not read and left out, if anything."""
    if not skipped:
        return []
    items = []
    for s in skipped:
        where = f"{s['file']} line {s['line']}" if "line" in s else s["file"]
        items.append(f"<li><code>{escape(where)}</code>: {escape(s['error'])}</li>")
    return [
        "<div class='bad'><b>Left out of this analysis: these could not be read</b>"
        f"<ul>{''.join(items)}</ul></div>"
    ]
