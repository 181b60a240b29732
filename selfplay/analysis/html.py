"""The analysis report: one self-contained HTML file, plots embedded as PNG data.

Nothing is fetched when it is opened: styles and the small script are inline, each plot is
a matplotlib figure rendered to PNG and embedded as a ``data:`` URL. The script records
script errors and, once the page has loaded, whether every plot decoded, on ``<body>``
(``data-rendered="ok"``, ``data-images``, ``data-errors``): the test opens the page in
headless Chromium and reads them back.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

    from selfplay.explorer import Skipped

ROLLING = 10
"""Steps in the rolling mean drawn over per-step curves."""

_STYLE = """
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

_SCRIPT = """
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
    var box = document.getElementById('verdict-filter');
    if (box) box.addEventListener('input', function () {
      var text = box.value.toLowerCase();
      document.querySelectorAll('#verdicts tbody tr').forEach(function (row) {
        row.style.display = row.textContent.toLowerCase().indexOf(text) >= 0 ? '' : 'none';
      });
    });
  });
})();
"""


def _png(fig) -> str:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    data = base64.b64encode(buffer.getvalue()).decode()
    return f'<img alt="plot" src="data:image/png;base64,{data}">'


def _figure(rows: int = 1, cols: int = 1, width: float = 10, height: float = 3.2):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(rows, cols, figsize=(width, height * rows), squeeze=False)
    return fig, axes


def _rolling(values: list[float]) -> np.ndarray:
    values = np.asarray(values, dtype=float)
    if values.size < ROLLING:
        return values
    kernel = np.ones(ROLLING) / ROLLING
    head = [values[: i + 1].mean() for i in range(ROLLING - 1)]
    return np.concatenate([head, np.convolve(values, kernel, mode="valid")])


def _curve(ax, steps, values, label, raw: bool = True) -> None:
    if not steps:
        return
    line = ax.plot(steps, _rolling(values), label=label)[0]
    if raw:
        ax.plot(steps, values, color=line.get_color(), alpha=0.2, linewidth=0.8)


def _e(text: Any) -> str:
    return html.escape(str(text))


def _pct(x: float | None, digits: int = 1) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}%}"


def _est(e: dict[str, float], digits: int = 3) -> str:
    return f"{e['value']:.{digits}f} [{e['low']:.{digits}f}, {e['high']:.{digits}f}]"


def _table(headers: list[str], rows: list[list[Any]], *, cls=None, table_id: str = "") -> str:
    head = "".join(
        f'<th class="{"l" if i == 0 else ""}">{_e(h)}</th>' for i, h in enumerate(headers)
    )
    body = []
    for k, row in enumerate(rows):
        css = f' class="{cls[k]}"' if cls else ""
        cells = "".join(
            f'<td class="{"l" if i == 0 or isinstance(c, str) and not _numeric(c) else ""}">{_e(c)}</td>'
            for i, c in enumerate(row)
        )
        body.append(f"<tr{css}>{cells}</tr>")
    ident = f' id="{table_id}"' if table_id else ""
    return f"<table{ident}><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _numeric(text: str) -> bool:
    return bool(text) and (text[0].isdigit() or text[0] in "+-.")


# -- sections -------------------------------------------------------------------------------


def _training_plots(train: list[dict], per_level) -> list[str]:
    from selfplay.analysis.analyze import series

    parts = []
    fig, axes = _figure(1, 2)
    _curve(axes[0][0], *series(train, "reward"), "reward")
    axes[0][0].set_title("reward (mean per step; rolling mean)")
    for key in sorted({k for r in train for k in r if k.startswith("accuracy/")}):
        _curve(axes[0][1], *series(train, key), key.split("/", 1)[1])
    axes[0][1].set_title("training accuracy per environment")
    axes[0][1].legend(fontsize=8)
    axes[0][0].set_xlabel("step")
    axes[0][1].set_xlabel("step")
    parts.append(_png(fig))

    if per_level is not None and not per_level.empty:
        envs = sorted(per_level["env"].unique())
        fig, axes = _figure(1, len(envs), height=3.0)
        for ax, env in zip(axes[0], envs, strict=True):
            mine = per_level[per_level["env"] == env]
            for level, group in mine.groupby("difficulty"):
                _curve(
                    ax, list(group["step"]), list(group["accuracy"]), f"level {level}", raw=False
                )
            ax.set_title(f"{env}: accuracy per level")
            ax.set_xlabel("step")
            ax.legend(fontsize=7)
        parts.append(_png(fig))

    fig, axes = _figure(1, 2)
    _curve(axes[0][0], *series(train, "length/reasoning_tokens_mean"), "reasoning tokens")
    _curve(axes[0][0], *series(train, "length/completion_tokens_mean"), "completion tokens")
    axes[0][0].set_title("reasoning length")
    axes[0][0].legend(fontsize=8)
    for key, label in (
        ("behaviour/self_correction_verified_rate", "self-correction (verified)"),
        ("behaviour/self_correction_lexical_rate", "self-correction (lexical)"),
        ("behaviour/verification_rate", "verification"),
        ("behaviour/ask_rate", "asks"),
        ("clarify/recall", "clarify recall"),
        ("clarify/precision", "clarify precision"),
    ):
        _curve(axes[0][1], *series(train, key), label, raw=False)
    axes[0][1].set_title("behaviour rates (rolling mean)")
    axes[0][1].legend(fontsize=7)
    parts.append(_png(fig))

    levels = sorted(
        {k for r in train for k in r if k.startswith("curriculum/") and k.endswith("/level")}
    )
    if levels:
        fig, axes = _figure(1, 1, height=2.6)
        for key in levels:
            steps, values = series(train, key)
            axes[0][0].step(steps, values, where="post", label=key.split("/")[1])
        axes[0][0].set_title("curriculum level per environment")
        axes[0][0].legend(fontsize=8)
        parts.append(_png(fig))
    return parts


def _pass_at_k_cells(summary: dict, side: str) -> dict[tuple[str, int], dict]:
    """(env, level) -> the pass@k row of the base or trained eval."""
    return {(r["env"], r["level"]): r for r in summary["evals"][side]["summary"]["pass_at_k"]}


def _grid(panels: int, cols: int = 4):
    """A figure of small panels, ``cols`` a row; the unused ones hidden."""
    fig, axes = _figure(max(1, math.ceil(panels / cols)), cols, width=12, height=2.6)
    for ax in axes.flat[panels:]:
        ax.axis("off")
    return fig, axes


def _passk_plot(summary: dict) -> str:
    base, trained = _pass_at_k_cells(summary, "base"), _pass_at_k_cells(summary, "trained")
    keys = sorted(base)
    fig, axes = _grid(len(keys))
    for ax, key in zip(axes.flat, keys, strict=False):
        for label, table in (("base", base), ("trained", trained)):
            if key not in table:
                continue
            ks = [int(k) for k in table[key]["pass_at_k"]]
            est = list(table[key]["pass_at_k"].values())
            ax.plot(ks, [e["value"] for e in est], marker="o", markersize=3, label=label)
            ax.fill_between(ks, [e["low"] for e in est], [e["high"] for e in est], alpha=0.2)
        ax.set_xscale("log", base=2)
        ax.set_ylim(-0.02, 1.02)
        ax.set_title(f"{key[0]} level {key[1]}", fontsize=9)
        ax.set_xlabel("k", fontsize=8)
    axes.flat[0].legend(fontsize=7)
    return _png(fig)


def _artefact_plot(probe: dict) -> str | None:
    keys = [k for k, s in probe.items() if len(s.get("greedy", [])) >= 2 and "gold_logprob" in s]
    if not keys:
        return None
    fig, axes = _grid(len(keys))
    for ax, key in zip(axes.flat, keys, strict=False):
        s = probe[key]
        ax.plot(s["steps"], s["greedy"], marker="o", markersize=3, color="C0", label="exact match")
        if "edit_distance" in s:
            ax.plot(
                s["steps"],
                [1 - v for v in s["edit_distance"]],
                color="C2",
                marker=".",
                label="1 - edit distance",
            )
        if "brier" in s:
            ax.plot(s["steps"], s["brier"], color="C4", linestyle=":", label="Brier (own answer)")
        ax.set_ylim(-0.02, 1.02)
        twin = ax.twinx()
        twin.plot(
            s["steps"],
            s["gold_logprob"],
            color="C3",
            marker="s",
            markersize=3,
            label="gold log-prob / token",
        )
        twin.tick_params(labelsize=7, colors="C3")
        ax.set_title(f"{key[0]} level {key[1]}", fontsize=9)
    handles = axes.flat[0].get_legend_handles_labels()
    axes.flat[0].legend(*handles, fontsize=6, loc="upper left")
    return _png(fig)


def _aha_plot(a: dict) -> str:
    fig, axes = _figure(1, 1, height=3.0)
    ax = axes[0][0]
    _curve(ax, a["steps"], a["verified"], "verified self-correction")
    _curve(ax, a["steps"], a["lexical"], "lexical self-correction")
    cp = a.get("change_point")
    if cp:
        ax.axvline(
            cp["step"],
            color="k",
            linestyle="--",
            linewidth=1,
            label=f"change point (p={cp['p_value']:.3f})",
        )
    ax.set_title("self-correction over training: verified vs lexical")
    ax.set_xlabel("step")
    ax.legend(fontsize=8)
    return _png(fig)


def _controls_plot(summary: dict, probe: dict) -> str | None:
    if not summary["controls"]:
        return None
    envs = sorted({e for e, _ in probe})
    fig, axes = _figure(1, len(envs), height=2.8)
    for ax, env in zip(axes[0], envs, strict=True):
        _mean_probe(ax, {f"{e}/{lv}": s for (e, lv), s in probe.items()}, env, "this run")
        for c in summary["controls"]:
            _mean_probe(ax, c["series"], env, f"control: {c['control']}")
        ax.set_title(f"{env}: probe greedy accuracy (mean over levels)", fontsize=9)
        ax.legend(fontsize=7)
    return _png(fig)


def _mean_probe(ax, series_by_key: dict, env: str, label: str) -> None:
    mine = [s for k, s in series_by_key.items() if k.split("/")[0] == env and s.get("greedy")]
    if not mine:
        return
    width = min(len(s["greedy"]) for s in mine)
    values = np.mean([s["greedy"][:width] for s in mine], axis=0)
    ax.plot(mine[0]["steps"][:width], values, marker="o", markersize=3, label=label)


# -- the page -------------------------------------------------------------------------------


def write_report(
    path: Path,
    summary: dict,
    run_dir: Path,
    train: list[dict],
    probe: dict,
    per_level: pd.DataFrame | None = None,
) -> Path:
    """Render the report for ``summary`` to ``path`` (written atomically); return ``path``.

    ``per_level``: ``per_level_accuracy`` of the run, read here when not given.
    """
    from selfplay.checkpoints import write_text_atomic

    t = summary["thresholds"]
    sections = [
        f"<h1>selfplay analysis: {_e(run_dir.name)}</h1>",
        f'<p class="note">{_e(summary["run"])} · written {_e(summary["written"])} · '
        f"{summary['training']['steps']} training steps</p>",
    ]
    sections += _skipped_section(summary.get("skipped", []))
    if "verdicts" in summary:
        sections += _verdict_section(summary, t)
    sections.append("<h2>Training</h2>")
    if per_level is None:
        per_level = per_level_accuracy(run_dir)
    sections += _training_plots(train, per_level)
    sections += _training_table(summary)
    if summary.get("selfplay"):
        sections += _selfplay_section(summary["selfplay"])
    if "evals" in summary:
        sections += _passk_section(summary)
    sections += _artefact_section(summary, probe, t)
    sections += _aha_section(summary["aha"], t)
    if summary.get("hacking"):
        from selfplay.analysis.hacking import hacking_section

        sections += hacking_section(summary["hacking"])
    if summary.get("calibration"):
        sections += _calibration_section(summary["calibration"])
    if summary["controls"]:
        sections += _controls_section(summary, probe)
    page = (
        "<!DOCTYPE html><html><head><meta charset='utf-8'>"
        f"<title>selfplay analysis: {_e(run_dir.name)}</title><style>{_STYLE}</style>"
        f"<script>{_SCRIPT}</script></head><body data-rendered='pending'>"
        + "\n".join(sections)
        + "<h2>Data</h2><p class='note'>Every number above is in summary.json beside this file."
        "</p></body></html>"
    )
    write_text_atomic(path, page)
    return path


def per_level_accuracy(run_dir: Path, skipped: Skipped | None = None) -> pd.DataFrame:
    """Accuracy of the solver transcripts per env, level and step (columns ``env``,
    ``difficulty``, ``step``, ``accuracy``); files that cannot be read go to ``skipped``."""
    from selfplay.explorer import query

    columns = ["step", "env", "difficulty", "verdict_score"]
    rows = query(run_dir, role="solver", columns=columns, skipped=skipped)
    rows = rows.assign(accuracy=(rows["verdict_score"] >= 1.0).astype(float))
    return rows.groupby(["env", "difficulty", "step"], as_index=False)["accuracy"].mean()


def _skipped_section(skipped: list[dict]) -> list[str]:
    """A warning naming what the analysis could not read and left out, if anything."""
    if not skipped:
        return []
    items = []
    for s in skipped:
        where = f"{s['file']} line {s['line']}" if "line" in s else s["file"]
        items.append(f"<li><code>{_e(where)}</code>: {_e(s['error'])}</li>")
    return [
        "<div class='bad'><b>Left out of this analysis: these could not be read</b>"
        f"<ul>{''.join(items)}</ul></div>"
    ]


def _verdict_section(summary: dict, t: dict) -> list[str]:
    from selfplay.analysis.verdicts import OUTCOMES as outcomes

    counts = summary["verdict_counts"]
    rows = [[what, *(c[o] for o in outcomes)] for what, c in counts.items()]
    detail, classes = [], []
    for v in summary["verdicts"]:
        detail.append(
            [
                v["env"],
                v["level"],
                v["what"],
                v["verdict"],
                _est(v["base_reach"]),
                _est(v["trained_reach"]),
                _est(v["gain"]),
                v["reason"],
            ]
        )
        classes.append(v["verdict"].replace(" ", "-"))
    s = summary["evals"]["settings"]
    lp = summary["base_logprob"]
    only = summary["solvable_only_after"]
    out = [
        "<h2>Elicited or newly acquired</h2>",
        f"<p>Base and trained model on the same held-out tasks: {s['tasks_per_level']} per "
        f"environment and level, {s['samples']} samples at temperature 1 each plus one greedy "
        f"(task seed {s['seed']}). Base: <code>{_e(summary['evals']['base']['model'])}</code>; "
        f"trained: <code>{_e(summary['evals']['trained']['model'])}</code>.</p>",
        _table(["what", *outcomes], rows),
        "<p class='note'><b>Rules.</b> Reach of the base model: for solving, pass@N (share of "
        "tasks solved by at least one of N samples) with a Clopper-Pearson interval over tasks; "
        "for a behaviour, its rate among samples with a Clopper-Pearson interval over samples. "
        "Gain: trained minus base per-task rate at temperature 1 (pass@1, or the behaviour's "
        f"rate), paired bootstrap over tasks. Every bound the rules compare is one-sided at "
        f"{t['confidence']:.0%} (the intervals shown are two-sided at "
        f"{2 * t['confidence'] - 1:.0%}). "
        f"<i>newly acquired</i>: base reach upper bound &lt; floor ({t['floor']} for solving, "
        f"{t['behaviour_floor']} for behaviours) and trained reach lower bound &ge; floor. "
        "<i>elicited</i>: base reach lower bound &ge; floor and gain lower bound &gt; 0. "
        "<i>not learned</i>: neither reaches the floor, or gain upper bound &lt; "
        f"{t['min_gain']} ({t['behaviour_min_gain']} for behaviours). Behaviours also get a "
        "verdict over all levels of an environment together (level <i>all</i>). "
        "<i>inconclusive</i>: otherwise.</p>",
        "<p>Filter: <input id='verdict-filter' placeholder='e.g. self_correction, elicited'></p>",
        _table(
            ["env", "level", "what", "verdict", "base reach", "trained reach", "gain", "why"],
            detail,
            cls=classes,
            table_id="verdicts",
        ),
        f"<p><b>Solvable only after training:</b> {len(only)} tasks (no base completion, greedy "
        "or sampled, solved them; a trained one did).</p>",
    ]
    if only:
        out.append(
            _table(
                ["task", "level", "trained solved"],
                [[o["task_id"], o["level"], f"{o['trained_solved']}/{o['of']}"] for o in only[:20]],
            )
        )
    if lp.get("trained_mean") is not None:
        out.append(
            f"<p><b>Are the trained model's solutions in the base distribution?</b> Mean "
            f"log-probability per token under the base model: trained model's correct solutions "
            f"{lp['trained_mean']:.3f} ({lp['trained_solutions']} scored), the base model's own "
            f"correct samples {_num(lp.get('base_mean'))}. "
            + (
                f"{lp['in_base_share']:.1%} of the trained solutions score at least the base "
                f"samples' 5th percentile ({lp['base_p5']:.3f})."
                if "in_base_share" in lp
                else ""
            )
            + "</p>"
        )
    return out


def _num(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.3f}"


def _training_table(summary: dict) -> list[str]:
    first, last = summary["training"]["first_tenth"], summary["training"]["last_tenth"]
    rows = [[k, _num(first[k]), _num(last[k])] for k in first if first[k] is not None]
    return [
        "<p>First and last tenth of training steps (means):</p>",
        _table(["metric", "first tenth", "last tenth"], rows),
    ]


def _passk_section(summary: dict) -> list[str]:
    base, trained = _pass_at_k_cells(summary, "base"), _pass_at_k_cells(summary, "trained")
    rows = []
    for key in sorted(base):
        b, tr = base[key], trained.get(key)
        if tr is None:
            continue
        n = str(b["samples"])
        rows.append(
            [
                key[0],
                key[1],
                _pct(b["greedy"]),
                _pct(tr["greedy"]),
                _est(b["pass_at_k"]["1"]),
                _est(tr["pass_at_k"]["1"]),
                _est(b["pass_at_k"][n]),
                _est(tr["pass_at_k"][n]),
            ]
        )
    return [
        "<h2>pass@k, base vs trained</h2>",
        "<p class='note'>Unbiased pass@k (Chen et al., 2021) per task, averaged over tasks; "
        "bands and brackets are 95% percentile-bootstrap intervals over tasks.</p>",
        _passk_plot(summary),
        _table(
            [
                "env",
                "level",
                "greedy base",
                "greedy trained",
                "pass@1 base",
                "pass@1 trained",
                "pass@N base",
                "pass@N trained",
            ],
            rows,
        ),
    ]


def _artefact_section(summary: dict, probe: dict, t: dict) -> list[str]:
    rows, classes = [], []
    for a in summary["artefacts"]:
        cont = ", ".join(f"{k} {v:.2f}" for k, v in a.get("continuous_share", {}).items())
        rows.append(
            [
                a["env"],
                a["level"],
                a["probes"],
                _num(a.get("exact_change")),
                "-".join(map(str, a.get("interval", []))),
                _num(a.get("exact_share")),
                cont,
                " -> ".join(_num(b) for b in a.get("brier_first_last", [])),
                a["finding"],
            ]
        )
        classes.append(
            {"likely metric artefact": "artefact", "genuine transition": "genuine"}.get(
                a["finding"], ""
            )
        )
    plot = _artefact_plot(probe)
    return [
        "<h2>Exact match vs continuous metrics</h2>",
        "<p class='note'>At each probe (before training, every probe interval, at the end) the "
        "greedy completions of the fixed probe set are scored by exact match and by continuous "
        "measures: the gold final tag's log-probability per token after the model's own "
        "reasoning, and the token edit distance of the answer; beside them, calibration: the "
        "Brier score of the probability the model gives its own final answer. "
        f"Exact match <i>jumps</i> when it changes by at least {t['min_exact_change']} and one "
        f"probe interval holds at least {t['jump_share']:.0%} of that change; a jump whose "
        "continuous counterparts move smoothly over that interval is a likely metric artefact, "
        "one where they jump too is a genuine transition.</p>",
        *([plot] if plot else []),
        _table(
            [
                "env",
                "level",
                "probes",
                "exact change",
                "interval",
                "share",
                "continuous share",
                "Brier first -> last",
                "finding",
            ],
            rows,
            cls=classes,
        ),
    ]


def _aha_section(a: dict, t: dict) -> list[str]:
    out = [
        "<h2>Aha moments: self-correction over training</h2>",
        f"<p><b>{_e(a['finding'])}.</b> Mean verified rate {_pct(a['verified_mean'], 2)}, lexical "
        f"{_pct(a['lexical_mean'], 2)}; steps with a lexical marker but no verified correction: "
        f"{a['lexical_without_verified_steps']}. Correlation of the verified rate with accuracy "
        f"{_num(a['correlation_accuracy'])}, with reasoning length {_num(a['correlation_length'])}."
        "</p>",
        "<p class='note'>Verified: a result changed on the way to a correct final answer. "
        "Lexical: the words of a correction (wait, actually, ...). They disagree when a model "
        "says the words without correcting anything, or corrects silently. Change point: the "
        "single mean shift minimising squared error, permutation p-value; it counts below "
        f"p = {t['aha_p_value']}.</p>",
        _aha_plot(a),
    ]
    if a["first_corrections"]:
        out.append("<p>The first verified corrections:</p>")
        for r in a["first_corrections"]:
            out.append(
                f"<details open><summary>step {r['step']} · {_e(r['task_id'])} · reward "
                f"{_num(r['reward'])}</summary><pre>{_e(r['prompt'])}\n\n{_e(r['completion'])}"
                f"\n\nexpected: {_e(r['answer'])}</pre></details>"
            )
    else:
        out.append("<p>No transcript of this run shows a verified correction.</p>")
    return out


def _calibration_curves(c: dict) -> list[tuple[str, dict]]:
    """(label, measures with a reliability table) of each curve of the reliability diagram."""
    curves = []
    if "training" in c:
        for side in ("first", "last"):
            m = c["training"][side]
            curves.append((f"training, {side} steps {m['steps'][0]}-{m['steps'][1]}", m))
    curves += [(f"{name} eval", m) for name, m in c.get("evals", {}).items()]
    return curves


def _calibration_plot(c: dict) -> str:
    fig, axes = _figure(1, 2, height=3.4)
    left, right = axes[0]
    left.plot([0, 1], [0, 1], color="k", linestyle="--", linewidth=1, label="calibrated")
    for label, m in _calibration_curves(c):
        bins = [b for b in m["reliability"] if b["count"]]
        if not bins:
            continue
        line = left.plot(
            [b["confidence"] for b in bins],
            [b["accuracy"] for b in bins],
            marker="o",
            markersize=3,
            label=f"{label} (ECE {_num(m['ece'])})",
        )[0]
        total = sum(b["count"] for b in bins)
        left.scatter(
            [b["confidence"] for b in bins],
            [b["accuracy"] for b in bins],
            s=[8 + 150 * b["count"] / total for b in bins],
            color=line.get_color(),
            alpha=0.35,
        )
    left.set_xlim(-0.02, 1.02)
    left.set_ylim(-0.02, 1.02)
    left.set_xlabel("stated confidence (mean in bin)")
    left.set_ylabel("accuracy in bin")
    left.set_title("reliability diagram (marker area: answers in the bin)")
    left.legend(fontsize=7, loc="upper left")
    windows = c.get("training", {}).get("windows", [])
    if windows:
        middle = [(w["steps"][0] + w["steps"][1]) / 2 for w in windows]
        for key, label in (
            ("ece", "ECE"),
            ("brier", "Brier score"),
            ("stated_share", "answers stating a confidence"),
        ):
            values = [math.nan if w[key] is None else w[key] for w in windows]
            right.plot(middle, values, marker="o", markersize=3, label=label)
        right.set_ylim(-0.02, 1.02)
        right.set_xlabel("step (window middle)")
        right.set_title("calibration over training")
        right.legend(fontsize=7)
    else:
        right.axis("off")
    return _png(fig)


def _calibration_section(c: dict) -> list[str]:
    out = [
        "<h2>Calibration: the confidence stated after the answer</h2>",
        "<p class='note'>A completion may end <code>&lt;answer&gt;…&lt;/answer&gt;"
        "&lt;confidence&gt;p&lt;/confidence&gt;</code>: p is the model's probability that its "
        "answer is right (verdict score 1). Expected calibration error (ECE): answers in "
        f"{c['bins']} equal-width bins of p, the mean over answers of |accuracy − mean p| of "
        "their bin; 0 is calibrated. Brier score: mean (p − right)². Every answer counts, "
        "guesses at underspecified tasks included. Evals: sampled completions (temperature "
        "1), ECE with a 95% bootstrap interval over tasks.</p>",
        _calibration_plot(c),
    ]
    if "training" in c:
        out.append("<p>Over training, in windows of steps:</p>")
        out.append(
            _table(
                ["steps", "answers", "stating p", "mean p", "accuracy", "ECE", "Brier"],
                [
                    _calibration_row(f"{w['steps'][0]}-{w['steps'][1]}", w)
                    for w in c["training"]["windows"]
                ],
            )
        )
    if "evals" in c:
        rows = []
        for name, m in c["evals"].items():
            row = _calibration_row(name, m)
            if "ece_ci" in m:
                row[5] = _est(m["ece_ci"])
            rows.append(row)
        out.append("<p>Base and trained model on the held-out tasks:</p>")
        out.append(
            _table(["model", "answers", "stating p", "mean p", "accuracy", "ECE", "Brier"], rows)
        )
    curves = [(label, m) for label, m in _calibration_curves(c) if m["stated"]]
    if curves:
        bins = curves[0][1]["reliability"]
        out.append("<p>Reliability table: mean p → accuracy (answers) per bin of p:</p>")
        out.append(
            _table(
                ["bin", *(label for label, _ in curves)],
                [
                    [
                        f"{b['low']:.1f}-{b['high']:.1f}",
                        *(_bin_cell(m["reliability"][i]) for _, m in curves),
                    ]
                    for i, b in enumerate(bins)
                ],
            )
        )
    return out


def _calibration_row(label: str, m: dict) -> list[Any]:
    return [
        label,
        m["answers"],
        _pct(m["stated_share"]),
        _num(m["mean_confidence"]),
        _pct(m["accuracy"]),
        _num(m["ece"]),
        _num(m["brier"]),
    ]


def _bin_cell(b: dict) -> str:
    if not b["count"]:
        return ""
    return f"{b['confidence']:.2f} → {b['accuracy']:.2f} ({b['count']})"


def _selfplay_plot(sp: dict) -> str:
    s = sp["series"]
    fig, axes = _figure(1, 2, height=3.0)
    left, right = axes[0]
    steps, mean = s["difficulty_mean"]
    _, spread = s["difficulty_spread"]
    if steps:
        left.plot(steps, mean, marker=".", label="difficulty (mean level)")
        low = [m - d for m, d in zip(mean, spread, strict=True)]
        high = [m + d for m, d in zip(mean, spread, strict=True)]
        left.fill_between(steps, low, high, alpha=0.2, label="± spread")
    left.set_ylabel("level")
    twin = left.twinx()
    twin.plot(*s["solve_rate_mean"], color="C2", marker=".", label="solve rate")
    twin.set_ylim(-0.02, 1.02)
    twin.set_ylabel("solve rate")
    left.set_title("proposed tasks: difficulty and the Solver's solve rate")
    left.set_xlabel("step")
    left.legend(fontsize=7, loc="upper left")
    twin.legend(fontsize=7, loc="upper right")
    for name in ("valid_rate", "duplicate_rate", "distinct_ratio"):
        right.plot(*s[name], marker=".", label=name.replace("_", " "))
    right.set_ylim(-0.02, 1.02)
    entropy = right.twinx()
    entropy.plot(*s["token_entropy"], color="C5", linestyle="--", label="token entropy (bits)")
    entropy.set_ylabel("bits")
    for step, flag in zip(*s["collapsed"], strict=True):
        if flag:
            right.axvline(step, color="C3", alpha=0.3, linewidth=3)
    right.set_title("proposals: validity and diversity (red: collapsed steps)")
    right.set_xlabel("step")
    right.legend(fontsize=7, loc="upper left")
    entropy.legend(fontsize=7, loc="upper right")
    return _png(fig)


def _selfplay_section(sp: dict) -> list[str]:
    collapses = sp["collapses"]
    if collapses:
        reasons = sorted({r for c in collapses for r in c["reasons"]})[:4]
        banner = (
            f"<p class='bad'><b>The Challenger collapsed at {len(collapses)} of "
            f"{sp['challenger_steps']} steps</b>: {_e('; '.join(reasons))}.</p>"
        )
    else:
        banner = f"<p>No collapse flagged over {sp['challenger_steps']} Challenger steps.</p>"
    out = [
        "<h2>Self-play: the Challenger</h2>",
        banner,
        _selfplay_plot(sp),
        "<p class='note'>The Challenger's reward per proposal:</p>",
        f"<pre>{_e(sp['formula'])}</pre>",
    ]
    if not sp.get("proposals"):
        return [*out, "<p>No Challenger transcripts.</p>"]
    status = sp["status"]
    out.append(
        _table(
            ["status", "proposals", "share"],
            [[k, n, _pct(n / sp["proposals"])] for k, n in sorted(status.items())],
        )
    )
    levels = sorted({lv for side in sp["difficulty"].values() for lv in side}, key=int)
    out += [
        f"<p>Valid proposals by level, first Challenger step ({sp['steps']['first']}) and last "
        f"({sp['steps']['last']}):</p>",
        _table(
            ["level", "first step", "last step"],
            [
                [lv, *(sp["difficulty"][side].get(lv, 0) for side in ("first", "last"))]
                for lv in levels
            ],
        ),
    ]
    for side in ("first", "last"):
        out.append(f"<p>Proposals of the {side} Challenger step, highest reward first:</p>")
        out.append(
            _table(
                ["wrote", "status", "task", "answer", "solve rate", "reward"],
                [
                    [
                        r["completion"],
                        r["proposal_status"]
                        + (f" ({r['proposal_detail']})" if r["proposal_detail"] else ""),
                        r["proposed_task"] or "",
                        r["answer"] or "",
                        _pct(r["solve_rate"]),
                        _num(r["reward"]),
                    ]
                    for r in sp["examples"][side]
                ],
            )
        )
    return out


def _controls_section(summary: dict, probe: dict) -> list[str]:
    rows = []
    for c in summary["controls"]:
        for r in c["probes"]:
            rows.append(
                [
                    c["control"],
                    r["env"],
                    r["level"],
                    _pct(r["run_first"]),
                    _pct(r["run_last"]),
                    _pct(r["control_first"]),
                    _pct(r["control_last"]),
                ]
            )
    plot = _controls_plot(summary, probe)
    return [
        "<h2>Controls</h2>",
        "<p class='note'>Runs of the same config with rewards replaced by a coin flip (random) "
        "or by the format component alone (format_only): what this run gained beyond them is "
        "what its reward taught.</p>",
        *([plot] if plot else []),
        _table(
            ["control", "env", "level", "run first", "run last", "control first", "control last"],
            rows,
        ),
        "<pre>" + _e(json.dumps([c["run"] for c in summary["controls"]])) + "</pre>",
    ]
