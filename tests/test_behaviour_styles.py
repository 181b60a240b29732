"""The behaviour taggers against hand-labelled traces in the layouts real models write.

``data/behaviour_traces.jsonl`` holds completions written in the organism's layout and in
the ones pretrained models use (prose, several steps a line, markdown, LaTeX, operators in
words, corrections that do not repeat the left-hand side, ...), each with its task and the
labels a person gave it by the rules of ``data/behaviour_traces.md``. The taggers must agree
with those labels on at least 95% of the traces, per behaviour, and never fire on a correct
single-pass trace. ``pytest -s`` prints the agreement per style, and for the traces written
while the taggers were being changed (``split: dev``) apart from those written after, which
nothing was tuned on (``split: heldout``).
"""

from __future__ import annotations

import json
from collections import defaultdict
from functools import cache
from pathlib import Path

import pytest

from envs import Task, load_env
from selfplay.behaviours import tag

DATA = Path(__file__).parent / "data" / "behaviour_traces.jsonl"
BEHAVIOURS = ("self_correction_verified", "verification")
MIN_AGREEMENT = 0.95
MIN_TRACES = 200


@cache
def rows() -> list[dict]:
    return [json.loads(line) for line in DATA.read_text(encoding="utf-8").splitlines()]


def task_of(row: dict) -> Task:
    return Task(
        row["id"], row["env"], row["difficulty"], row["prompt"], row["answer"],
        metadata=row["metadata"],
    )  # fmt: skip


@cache
def tagged() -> list[tuple[dict, float, dict]]:
    """(row, the environment's score, the tags) of every labelled trace."""
    out = []
    for row in rows():
        task = task_of(row)
        verdict = load_env(row["env"]).score(row["completion"], task)
        out.append((row, verdict.score, tag(row["completion"], task, verdict)))
    return out


def agreement(items: list[tuple[dict, float, dict]]) -> dict[str, dict[str, tuple[int, int]]]:
    """Per style, split and ``all``: per behaviour, (traces where the tag equals the label, traces)."""
    table: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(lambda: [0, 0]))
    for row, _, tags in items:
        for style in (row["style"], f"all, {row['split']}", "all"):
            for behaviour in BEHAVIOURS:
                cell = table[style][behaviour]
                cell[0] += tags[behaviour] == row[behaviour]
                cell[1] += 1
    return {style: {b: tuple(c) for b, c in cells.items()} for style, cells in table.items()}


def markdown_table(table: dict[str, dict[str, tuple[int, int]]]) -> str:
    lines = [
        "| style | traces | " + " | ".join(BEHAVIOURS) + " |",
        "| --- | ---: | " + " | ".join("---:" for _ in BEHAVIOURS) + " |",
    ]
    for style in sorted(table, key=lambda s: (s.startswith("all"), s == "all", s)):
        n = table[style][BEHAVIOURS[0]][1]
        cells = (f"{agree / total:.2f}" for agree, total in table[style].values())
        lines.append(f"| {style} | {n} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def test_the_set_is_well_formed():
    data = rows()
    assert len(data) >= MIN_TRACES
    assert len({row["id"] for row in data}) == len(data)
    assert {row["split"] for row in data} == {"dev", "heldout"}
    single_pass_styles = {row["style"] for row in data if row["kind"] == "single_pass"}
    assert single_pass_styles == {row["style"] for row in data}  # negatives in every style
    for row in data:
        assert row["kind"] != "single_pass" or not (
            row["self_correction_verified"] or row["verification"]
        ), row["id"]
        assert row["correct"] or not row["self_correction_verified"], row["id"]


@pytest.mark.parametrize("index", range(len(rows())), ids=lambda i: rows()[i]["id"])
def test_correct_label_matches_the_scorer(index):
    row, score, _ = tagged()[index]
    assert (score == 1.0) is row["correct"]


def test_agreement_per_style(record_property):
    table = agreement(tagged())
    print("\n" + markdown_table(table))
    record_property("agreement", json.dumps(table))
    for behaviour in BEHAVIOURS:
        labels = [(row[behaviour], tags[behaviour]) for row, _, tags in tagged()]
        print(
            f"{behaviour}: labelled yes {sum(y for y, _ in labels)}, found "
            f"{sum(y and t for y, t in labels)}; labelled no {sum(not y for y, _ in labels)}, "
            f"tagged yes {sum(t and not y for y, t in labels)}"
        )
    misses = [
        f"{row['id']} ({row['kind']}): {b} tagged {tags[b]}, labelled {row[b]}"
        for row, _, tags in tagged()
        for b in BEHAVIOURS
        if tags[b] != row[b]
    ]
    print("\n".join(misses))
    for behaviour in BEHAVIOURS:
        agree, total = table["all"][behaviour]
        assert agree / total >= MIN_AGREEMENT, (behaviour, agree, total, misses)


def test_no_false_positives_on_correct_single_pass_traces():
    fired = [
        (row["id"], b)
        for row, score, tags in tagged()
        if row["kind"] == "single_pass" and score == 1.0
        for b in BEHAVIOURS
        if tags[b]
    ]
    assert fired == []
