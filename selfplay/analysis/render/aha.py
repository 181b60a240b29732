"""The report's "Aha moments" section: verified and lexical self-correction over training,
the change point, and the first verified corrections (``selfplay.analysis.aha``)."""

from __future__ import annotations

from selfplay.analysis.render.common import curve, escape, figure, number, percent, png


def aha_section(a: dict, t: dict) -> list[str]:
    """The section for the summary's ``aha`` part (``t``: the thresholds)."""
    out = [
        "<h2>Aha moments: self-correction over training</h2>",
        f"<p><b>{escape(a['finding'])}.</b> Mean verified rate {percent(a['verified_mean'], 2)}, "
        f"lexical {percent(a['lexical_mean'], 2)}; steps with a lexical marker but no verified "
        f"correction: {a['lexical_without_verified_steps']}. Correlation of the verified rate "
        f"with accuracy {number(a['correlation_accuracy'])}, with reasoning length "
        f"{number(a['correlation_length'])}.</p>",
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
                f"<details open><summary>step {r['step']} · {escape(r['task_id'])} · reward "
                f"{number(r['reward'])}</summary><pre>{escape(r['prompt'])}\n\n"
                f"{escape(r['completion'])}\n\nexpected: {escape(r['answer'])}</pre></details>"
            )
    else:
        out.append("<p>No transcript of this run shows a verified correction.</p>")
    return out


def _aha_plot(a: dict) -> str:
    fig, axes = figure(1, 1, height=3.0)
    ax = axes[0][0]
    curve(ax, a["steps"], a["verified"], "verified self-correction")
    curve(ax, a["steps"], a["lexical"], "lexical self-correction")
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
    return png(fig)
