"""The transcript schema names every column the runs write, in the order they write them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from envs import Task, Verdict
from selfplay.behaviours import TAGGERS, aggregate, tag
from selfplay.behaviours.metrics import RATES
from selfplay.transcripts import schema
from selfplay.transcripts.writer import parse_name

GOLDEN = Path(__file__).parent / "data" / "golden"


def golden_files() -> list[tuple[str, str, list[str]]]:
    """(case, role, columns) of every transcript file pinned by ``test_golden``."""
    out = []
    for path in sorted(GOLDEN.glob("*.json")):
        for entry in json.loads(path.read_text())["transcripts"]:
            if "file" in entry:
                role, _ = parse_name(entry["file"])
                out.append((path.stem, role, entry["columns"]))
    return out


@pytest.mark.parametrize(("case", "role", "columns"), golden_files())
def test_the_schema_names_every_written_column_in_its_order(case, role, columns):
    named = [c for c in columns if not schema.is_reward_component(c)]
    assert set(named) <= set(schema.COLUMNS), (case, role)
    order = schema.COLUMNS_BY_ROLE[role]
    assert named == [c for c in order if c in named], (case, role)
    components = [c for c in columns if schema.is_reward_component(c)]
    if components:  # the reward_<component> columns stand right before the total
        at = columns.index(schema.REWARD)
        assert columns[at - len(components) : at] == components, (case, role)


def test_the_golden_files_cover_the_roles_of_training_and_self_play():
    assert {role for _, role, _ in golden_files()} == {
        schema.SOLVER,
        schema.CHALLENGER,
        schema.ATTEMPT,
    }


def test_tag_writes_the_tag_columns_in_order():
    task = Task("t/1", "arithmetic", 1, "Compute 7+5.", "12")
    row = tag("<think>7+5=12</think><answer>12</answer>", task, Verdict(1.0, "answer", "12", "ok"))
    assert tuple(row) == schema.TAG_COLUMNS
    assert set(TAGGERS) <= set(schema.TAGS)
    assert set(RATES.values()) <= set(schema.TAG_COLUMNS)
    assert aggregate([row])["behaviour/verification_rate"] == row[schema.VERIFICATION]


def test_every_constant_is_a_column_a_role_or_a_value():
    names = [
        value
        for name, value in vars(schema).items()
        if name.isupper() and isinstance(value, str) and not name.endswith("_PREFIX")
    ]
    columns = set(schema.COLUMNS) | set(schema.ROLES) | set(schema.CLARIFY_OUTCOMES)
    assert set(names) <= columns | {schema.PROPOSAL_OK}
    assert len(schema.COLUMNS) == len(set(schema.COLUMNS))
    assert schema.reward_column("correct") == "reward_correct"
    assert schema.greedy_column("brier") == "greedy_brier"
