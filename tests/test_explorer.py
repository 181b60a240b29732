"""`selfplay transcripts`: every filter against a plain-Python reference, the group views, JSON.

The run is synthetic and small: four steps of four groups of four completions (two envs, two
levels), written with the real ``TranscriptWriter`` in the schema ``Recorder.record`` writes,
plus one eval file at step 2 with its extra columns. A second run, a self-play one, has the
three roles of ``selfplay.play`` (challenger, attempt, solver), each with its own columns.
"""

import argparse
import json
import math
import re
from collections import Counter

import pytest

from selfplay.cli import views
from selfplay.errors import UsageError
from selfplay.transcripts import PROPOSAL_STATUSES, TranscriptWriter, chain, query

G = 4
"""Completions per group."""

PLAN = {
    # step: per group (env, level, task index, correct flags of its completions)
    0: [
        ("arithmetic", 1, 7, [0, 0, 0, 0]),
        ("arithmetic", 2, 1, [1, 0, 1, 0]),
        ("countdown", 1, 2, [1, 1, 1, 1]),
        ("countdown", 2, 3, [0, 1, 0, 0]),
    ],
    1: [
        ("arithmetic", 1, 10, [1, 1, 0, 1]),
        ("arithmetic", 2, 11, [0, 0, 0, 0]),
        ("countdown", 1, 12, [1, 0, 0, 0]),
        ("countdown", 2, 13, [1, 1, 1, 1]),
    ],
    2: [
        ("arithmetic", 1, 7, [1, 0, 1, 0]),
        ("arithmetic", 2, 21, [1, 1, 1, 1]),
        ("countdown", 1, 22, [0, 0, 1, 0]),
        ("countdown", 2, 23, [0, 0, 0, 0]),
    ],
    3: [
        ("arithmetic", 1, 7, [1, 1, 1, 1]),
        ("arithmetic", 2, 31, [0, 1, 1, 1]),
        ("countdown", 1, 32, [1, 1, 1, 1]),
        ("countdown", 2, 33, [0, 0, 1, 1]),
    ],
}
EQUAL_SOLVER_GROUPS = {(0, 0), (0, 2), (1, 1), (1, 3), (2, 1), (2, 3), (3, 0), (3, 2)}
"""(step, group) of the solver groups above whose completions all got the same reward."""


def make_row(step, group, i, env, level, index, correct, role="solver", clarify=1.0):
    """One transcript row with the keys ``Recorder.record`` writes, realistic values."""
    a, b = 3 + index, 4
    said = a + b if correct else a + b + 1
    wait = i == 1  # the second completion of each group says "wait"
    reasoning = f"{a}+{b}={a + b + 1}\nwait, {a}+{b}={said}" if wait else f"{a}+{b}={said}"
    completion = f"<think>{reasoning}</think><answer>{said}</answer>"
    reward = correct + 1.0 + 0.1 * (clarify or 0.0)
    return {
        "run": "synthetic",
        "step": step,
        "role": role,
        "group": group,
        "task_id": f"{env}/0/{level}/{index}",
        "env": env,
        "difficulty": level,
        "specified": True,
        "prompt": f"Compute {a}+{b}.",
        "answer": str(a + b),
        "completion": completion,
        "completion_tokens": len(completion) // 3,
        "reasoning_tokens": len(reasoning) // 3,
        "reward_correct": float(correct),
        "reward_format": 1.0,
        "reward_clarify": clarify,
        "reward": reward,
        "advantage": 0.0,  # filled per group below
        "verdict_kind": "answer",
        "verdict_parsed": str(said),
        "verdict_score": float(correct),
        "verdict_reason": "correct" if correct else "wrong",
        "reasoning_chars": len(reasoning),
        "reasoning_steps": reasoning.count("="),
        "self_correction_lexical": wait,
        "self_correction_verified": wait and bool(correct),
        "verification": step == 2 and group == 1 and i == 0,
        "backtracking": env == "countdown" and not correct,
        "asked": False,
        "clarify_outcome": "true_negative",
    }


def with_advantages(rows):
    """Group-normalised advantages, as TRL computes them with scale_rewards="group"."""
    for k in range(0, len(rows), G):
        group = rows[k : k + G]
        mean = sum(r["reward"] for r in group) / G
        std = math.sqrt(sum((r["reward"] - mean) ** 2 for r in group) / (G - 1))
        for r in group:
            r["advantage"] = (r["reward"] - mean) / (std + 1e-4)
    return rows


def solver_rows(step):
    # At step 3 no reward_clarify applies: the column is all None (Parquet type null) there.
    clarify = None if step == 3 else 1.0
    rows = [
        make_row(step, g, i, env, level, index, c, clarify=clarify)
        for g, (env, level, index, flags) in enumerate(PLAN[step])
        for i, c in enumerate(flags)
    ]
    return with_advantages(rows)


def eval_rows():
    """Eval at step 2: the arithmetic task 7 again, greedy and sampled, with extra columns."""
    rows = []
    for g, temperature in enumerate((0.0, 1.0)):
        for i, c in enumerate([1, 1, 0, 1]):
            row = make_row(2, g, i, "arithmetic", 1, 7, c, role="eval")
            rows.append({**row, "sample": i, "temperature": temperature})
    return with_advantages(rows)


def all_rows():
    """Every row in the order ``query`` returns them: by step, then role, then file order."""
    rows = []
    for step in PLAN:
        rows += (eval_rows() if step == 2 else []) + solver_rows(step)
    return rows


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("run")
    writer = TranscriptWriter(folder / "transcripts")
    for step in PLAN:
        writer.write(step, solver_rows(step))
    writer.write(2, eval_rows(), role="eval")
    (folder / "transcripts" / ".solver-step-000004.parquet.tmp-1").write_text("half written")
    return folder


def ids(rows):
    return [(r["step"], r["role"], r["group"], r["completion"]) for r in rows]


def got(frame):
    return ids(frame.to_dict("records"))


def expected(keep):
    return ids([r for r in all_rows() if keep(r)])


# -- query ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs,keep",
    [
        ({}, lambda r: True),
        ({"steps": "1:2"}, lambda r: 1 <= r["step"] <= 2),
        ({"steps": "2:"}, lambda r: r["step"] >= 2),
        ({"steps": ":1"}, lambda r: r["step"] <= 1),
        ({"steps": "2"}, lambda r: r["step"] == 2),
        ({"steps": 3}, lambda r: r["step"] == 3),
        ({"steps": " 1 : 1 "}, lambda r: r["step"] == 1),
        ({"steps": "7:"}, lambda r: False),
        ({"env": "countdown"}, lambda r: r["env"] == "countdown"),
        ({"env": ["countdown", "arithmetic"]}, lambda r: True),
        ({"level": 2}, lambda r: r["difficulty"] == 2),
        ({"level": "1,2"}, lambda r: True),
        ({"behaviour": "self_correction_lexical"}, lambda r: r["self_correction_lexical"]),
        ({"behaviour": "self_correction_verified"}, lambda r: r["self_correction_verified"]),
        ({"behaviour": "verification"}, lambda r: r["verification"]),
        ({"behaviour": "backtracking"}, lambda r: r["backtracking"]),
        ({"behaviour": "asked"}, lambda r: False),
        ({"behaviour": "true_negative"}, lambda r: True),
        ({"behaviour": "false_positive"}, lambda r: False),
        (
            {"behaviour": ["backtracking", "self_correction_lexical"]},
            lambda r: r["backtracking"] and r["self_correction_lexical"],
        ),
        ({"reward": "2:"}, lambda r: r["reward"] >= 2),
        ({"reward": ":1.05"}, lambda r: r["reward"] <= 1.05),
        ({"reward": "1.05:2.05"}, lambda r: 1.05 <= r["reward"] <= 2.05),
        ({"reward": ">1.5"}, lambda r: r["reward"] > 1.5),
        ({"reward": "<=1.1"}, lambda r: r["reward"] <= 1.1),
        ({"reward": "==2"}, lambda r: r["reward"] == 2),
        ({"reward": "!=2.1"}, lambda r: r["reward"] != 2.1),
        ({"reward": 1.0}, lambda r: r["reward"] == 1.0),
        ({"role": "eval"}, lambda r: r["role"] == "eval"),
        ({"role": "solver", "steps": "2"}, lambda r: r["role"] == "solver" and r["step"] == 2),
        ({"task_id": "arithmetic/0/1/7"}, lambda r: r["task_id"] == "arithmetic/0/1/7"),
        (
            {"env": "countdown", "level": 2, "behaviour": "backtracking", "steps": "1:3"},
            lambda r: (
                r["env"] == "countdown"
                and r["difficulty"] == 2
                and r["backtracking"]
                and 1 <= r["step"] <= 3
            ),
        ),
    ],
)
def test_filters_keep_what_the_reference_keeps(run, kwargs, keep):
    assert got(query(run, **kwargs)) == expected(keep)


def test_equal_reward_groups_are_judged_on_whole_groups(run):
    frame = query(run, equal_reward_groups=True, role="solver", columns=["step", "group"])
    assert set(map(tuple, frame.drop_duplicates().to_numpy().tolist())) == EQUAL_SOLVER_GROUPS
    assert len(frame) == G * len(EQUAL_SOLVER_GROUPS)
    # Step 3, group 1 (rewards 1, 2, 2, 2) is not equal though three of four agree; nor is
    # either eval group (1, 1, 0, 1 correct).
    assert query(run, equal_reward_groups=True, role="eval").empty
    # With a row filter, a row is kept when its whole group is equal, not the rows kept:
    # the "wait" completions of equal groups, one per group.
    waits = query(run, equal_reward_groups=True, behaviour="self_correction_lexical")
    assert got(waits) == expected(
        lambda r: (
            r["self_correction_lexical"]
            and r["role"] == "solver"
            and (r["step"], r["group"]) in EQUAL_SOLVER_GROUPS
        )
    )
    # Every equal group has zero advantage everywhere: the point of the diagnostic.
    assert (query(run, equal_reward_groups=True)["advantage"].abs() < 1e-9).all()


def test_equal_reward_groups_combine_with_group_filters(run):
    frame = query(run, equal_reward_groups=True, env="countdown", steps="1:")
    want = {(s, g) for s, g in EQUAL_SOLVER_GROUPS if s >= 1 and g >= 2}
    assert set(zip(frame["step"], frame["group"], strict=True)) == want


def test_columns_are_projected_and_schemas_unified(run):
    frame = query(run, steps="2:3", columns=["step", "role", "reward_clarify", "temperature"])
    assert list(frame.columns) == ["step", "role", "reward_clarify", "temperature"]
    solver = frame[frame["role"] == "solver"]
    assert frame[frame["role"] == "eval"]["temperature"].notna().all()
    assert solver["temperature"].isna().all()  # eval-only column: null in solver files
    assert solver[solver["step"] == 3]["reward_clarify"].isna().all()  # all-None step
    assert (solver[solver["step"] == 2]["reward_clarify"] == 1.0).all()


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"steps": "a:b"}, "--steps 'a:b'"),
        ({"steps": "3:1"}, "--steps '3:1'"),
        ({"steps": "1:2:3"}, "--steps '1:2:3'"),
        ({"steps": "-1"}, "--steps '-1'"),
        ({"steps": ":"}, "--steps ':'"),
        ({"reward": "abc"}, "--reward 'abc'"),
        ({"reward": "1:x"}, "--reward '1:x'"),
        ({"reward": ">"}, "--reward '>'"),
        ({"reward": "2:1"}, "--reward '2:1'"),
        ({"reward": "nan"}, "--reward 'nan'"),
        ({"level": "two"}, "--level 'two'"),
        ({"behaviour": "waiting"}, "--behaviour 'waiting'"),
        ({"role": "critic"}, "--role 'critic'"),
        ({"columns": ["step", "nosuch"]}, "'nosuch'"),
    ],
)
def test_bad_values_are_usage_errors_naming_them(run, kwargs, message):
    with pytest.raises(UsageError) as err:
        query(run, **kwargs)
    assert message in str(err.value)


def test_unknown_behaviour_lists_the_valid_ones(run):
    with pytest.raises(UsageError) as err:
        query(run, behaviour="waiting")
    for name in ("self_correction_verified", "backtracking", "asked", "false_negative"):
        assert name in str(err.value)


def test_a_run_without_transcripts_is_named(tmp_path):
    with pytest.raises(UsageError, match=re.escape(str(tmp_path / "transcripts"))):
        query(tmp_path)
    with pytest.raises(UsageError, match="nosuch"):
        query(tmp_path / "nosuch")


# -- the command ----------------------------------------------------------------------------


def command(*argv):
    """Run ``selfplay transcripts`` through a parser built with ``register``."""
    parser = argparse.ArgumentParser(prog="selfplay")
    sub = parser.add_subparsers(dest="command", required=True)
    views.register(sub)
    args = parser.parse_args(["transcripts", *map(str, argv)])
    args.func(args)


@pytest.fixture
def wide(monkeypatch):
    monkeypatch.setenv("COLUMNS", "220")


def text(capsys):
    """What the command printed, without the spaces rich pads lines with."""
    return "\n".join(line.rstrip() for line in capsys.readouterr().out.splitlines())


def json_lines(capsys):
    out = capsys.readouterr().out
    return [json.loads(line) for line in out.splitlines()]


def test_default_view_shows_rows_and_the_footer(run, capsys, wide):
    command(run, "--env", "countdown", "--steps", "1", "--limit", "3")
    out = capsys.readouterr().out
    assert "8 of 16 rows matched (showing 3" in out  # 16: the rows of step 1's only file
    assert out.count("countdown/0/1/12") == 3 and "countdown/0/2/13" not in out
    assert "backtracking" in out  # the tags that are true
    assert "<think>15+4=19</think><answer>19</answer>" in out


def test_default_view_limit_shows_the_first_matches(run, capsys):
    command(run, "--behaviour", "self_correction_lexical", "--limit", "5", "--json")
    assert ids(json_lines(capsys)) == expected(lambda r: r["self_correction_lexical"])[:5]
    command(run, "--reward", "<=1", "--limit", "0", "--json")
    assert ids(json_lines(capsys)) == expected(lambda r: r["reward"] <= 1)


def test_json_rows_have_every_column_and_null_for_nan(run, capsys):
    command(run, "--steps", "3", "--limit", "2", "--json")
    rows = json_lines(capsys)
    assert len(rows) == 2
    assert set(rows[0]) == set(all_rows()[-1])  # the columns of the files in range
    assert rows[0]["reward_clarify"] is None
    assert rows[0]["self_correction_lexical"] is False and isinstance(rows[0]["step"], int)


def test_group_view_shows_whole_groups_and_marks_matches(run, capsys, wide):
    command(run, "--group", "--behaviour", "verification", "--role", "solver")
    out = text(capsys)
    assert "step 2 · solver · group 1 · arithmetic level 2 · arithmetic/0/2/21" in out
    assert out.count("prompt: Compute 24+4.") == 1  # the task once
    assert "#0* · reward 2.1 (correct 1, format 1, clarify 1)" in out  # matched: marked
    assert "#1 · reward 2.1" in out and "#3 · " in out  # the rest of the group, unmarked
    assert "<think>24+4=29\n    wait, 24+4=28</think><answer>28</answer>" in out  # full text
    assert "1 of 1 matching groups shown; 1 of 64 rows matched" in out


def test_group_json_is_one_object_per_group(run, capsys):
    command(run, "--group", "--equal-reward-groups", "--role", "solver", "--json", "--limit", "0")
    groups = json_lines(capsys)
    assert {(g["step"], g["group"]) for g in groups} == EQUAL_SOLVER_GROUPS
    first = groups[0]
    assert first["task_id"] == "arithmetic/0/1/7" and first["prompt"] == "Compute 10+4."
    assert len(first["completions"]) == G
    assert all(c["matched"] for c in first["completions"])
    assert "prompt" not in first["completions"][0] and "completion" in first["completions"][0]


def test_group_view_limit_counts_groups(run, capsys):
    command(run, "--group", "--reward", "<=1.1", "--steps", "0", "--limit", "1", "--json")
    (group,) = json_lines(capsys)
    assert (group["step"], group["group"]) == (0, 0)
    marks = [c["matched"] for c in group["completions"]]
    assert marks == [True, True, True, True]
    command(run, "--group", "--reward", ">2", "--steps", "0", "--limit", "2", "--json")
    groups = json_lines(capsys)
    assert [(g["step"], g["group"]) for g in groups] == [(0, 1), (0, 2)]
    assert [c["matched"] for c in groups[0]["completions"]] == [True, False, True, False]


def test_diff_follows_one_task_across_steps(run, capsys, wide):
    command(run, "--diff", "arithmetic/0/1/7", "--role", "solver", "--json")
    steps = json_lines(capsys)
    assert [s["step"] for s in steps] == [0, 2, 3]
    assert [s["solve_rate"] for s in steps] == [0.0, 0.5, 1.0]
    assert [s["n"] for s in steps] == [G, G, G]
    assert steps[0]["prompt"] == "Compute 10+4." and steps[0]["answer"] == "14"
    assert steps[2]["answers"] == {"14": 4}
    assert steps[1]["answers"] == {"14": 2, "15": 2}
    assert math.isclose(steps[1]["mean_reward"], 1.6)

    command(run, "--diff", "arithmetic/0/1/7", "--limit", "1")
    out = capsys.readouterr().out
    assert "task arithmetic/0/1/7  (arithmetic level 1)" in out
    for step, role, n in ((0, "solver", 4), (2, "eval", 8), (2, "solver", 4), (3, "solver", 4)):
        assert re.search(rf"^\s*{step}\s+{role}\s+{n}\s", out, re.MULTILINE)  # every step ...
    assert "step 0 · solver" in out and "step 3 · solver" not in out  # ... details up to --limit
    assert "1 of 4 steps shown; 20 of 72 rows matched" in out


def test_diff_of_an_unknown_task_says_nothing_matched(run, capsys):
    command(run, "--diff", "arithmetic/0/1/999")
    assert "task 'arithmetic/0/1/999': 0 of 72 rows matched" in capsys.readouterr().out


def test_command_errors_are_usage_errors(run):
    with pytest.raises(UsageError, match="--steps 'x'"):
        command(run, "--steps", "x")
    with pytest.raises(UsageError, match="--limit -1"):
        command(run, "--limit", "-1")
    with pytest.raises(SystemExit):  # argparse: --group and --diff are exclusive
        command(run, "--group", "--diff", "arithmetic/0/1/7")


def test_help_names_the_filters():
    sub = argparse.ArgumentParser(prog="selfplay").add_subparsers()
    views.register(sub)
    text = sub.choices["transcripts"].format_help()
    for word in ("--equal-reward-groups", "--diff", "self_correction_verified", "LO:HI"):
        assert word in text


def _hooked() -> bool:
    from selfplay.cli import build_parser

    return "transcripts" in build_parser().format_help()


@pytest.mark.skipif(not _hooked(), reason="transcripts is not registered in selfplay.cli yet")
def test_through_the_cli(run, capsys):
    from selfplay.cli import main

    assert main(["transcripts", str(run), "--steps", "0", "--json", "--limit", "0"]) == 0
    assert len(json_lines(capsys)) == 4 * G
    assert main(["transcripts", str(run), "--behaviour", "waiting"]) == 2
    err = capsys.readouterr().err
    assert "--behaviour 'waiting'" in err and err.count("\n") == 1


# -- self-play runs: roles with different columns ---------------------------------------------
#
# A self-play run (``selfplay.play``) writes three roles with different columns: challenger
# rows (proposals), attempt rows (the Solver attempts that rated them) and solver rows
# (training). The mixed run below: proposals at steps 0, 2 and 3 (step 3 all rejected, so its
# task columns are all null), attempts at steps 0 and 2, training at steps 1 and 4.

A, B, C, D = (f"arithmetic/proposed/1/{h}" for h in ("aaaa", "bbbb", "cccc", "dddd"))
SP_TASKS = {A: ("7+1", "8"), B: ("95+7", "102"), C: ("6+5", "11"), D: ("9+9", "18")}
"""Task id -> (the expression the Challenger proposed, the computed answer)."""
REJECTED = {
    "invalid": "negative_intermediate",
    "unsafe": "forbidden_character",
    "unparsable": "no_task_tag",
}
PROPOSALS = {
    # step: per group, its four proposals: (status, task id or None, the Challenger's text)
    0: [
        [("ok", A, None), ("invalid", None, "5-24"), ("ok", B, None), ("unsafe", None, "os")],
        [("duplicate", A, None), ("ok", C, None), ("unparsable", None, None), ("ok", D, None)],
    ],
    2: [[("duplicate", A, None), ("ok", D, None), ("unsafe", None, "x"), ("invalid", None, "1-9")]],
    3: [
        [
            ("unparsable", None, None),
            ("unparsable", None, None),
            ("invalid", None, "2-3"),
            ("unsafe", None, "y"),
        ]
    ],
}
ATTEMPTS = {
    # step: per rated task (its group), the correct flags of the Solver's attempts
    0: [(A, [1, 0, 0, 0]), (B, [0, 0, 0, 0]), (C, [1, 0, 1, 0])],
    2: [(A, [1, 1, 0, 1]), (D, [0, 0, 0, 0])],
}
TRAINING = {
    # step: per group, the task and the correct flags of its completions
    1: [(A, [1, 0, 1, 0]), (C, [1, 1, 1, 1])],
    4: [(A, [1, 1, 1, 0]), (D, [0, 1, 0, 0])],
}


def task_fields(task_id):
    text, answer = SP_TASKS[task_id]
    return {
        "task_id": task_id,
        "env": "arithmetic",
        "difficulty": 1,
        "specified": True,
        "prompt": f"Compute {text}.",
        "answer": answer,
    }


def solved_by(step, task_id):
    """The solve rate the attempts of ``step`` gave ``task_id`` (None if not rated then)."""
    flags = dict(ATTEMPTS.get(step, [])).get(task_id)
    return None if flags is None else sum(flags) / len(flags)


def challenger_rows(step):
    """One row per proposal, with the columns ``selfplay.play`` writes."""
    rows = []
    for group, proposals in enumerate(PROPOSALS[step]):
        for status, task_id, wrote in proposals:
            task = task_fields(task_id) if task_id else None
            p = solved_by(step, task_id) if task_id else None
            learnability = 1 - abs(2 * p - 1) if p is not None else 0.0
            repetition = 1.0 if status == "duplicate" else 0.0
            wrote = SP_TASKS[task_id][0] if task_id else wrote
            rows.append(
                {
                    "run": "selfplay",
                    "step": step,
                    "role": "challenger",
                    "group": group,
                    "task_id": task_id,
                    "env": "arithmetic",
                    "difficulty": task["difficulty"] if task else None,
                    "specified": True,
                    "prompt": "Propose a task for arithmetic.",
                    "answer": task["answer"] if task else None,
                    "completion": f"<task>{wrote}</task>" if wrote else "<task>",
                    "completion_tokens": 5,
                    "proposed_task": task["prompt"] if task else None,
                    "proposal_status": status,
                    "proposal_detail": "seen_before" if task else REJECTED[status],
                    "solve_rate": p,
                    "attempts": 4 if p is not None else 0,
                    "reward_learnability": learnability,
                    "reward_repetition": repetition,
                    "reward": learnability - 0.5 * repetition if task else -1.0,
                    "advantage": 0.0,
                }
            )
            if status == "ok":
                rows[-1]["proposal_detail"] = ""
    return with_advantages(rows)


def answering(task_id, correct, i):
    """A Solver completion on ``task_id``: right or one off; the second one checks itself."""
    answer = int(SP_TASKS[task_id][1])
    said = answer if correct else answer + 1
    check = i == 1
    reasoning = f"{SP_TASKS[task_id][0]}={said}" + ("\ncheck: ok" if check else "")
    return said, reasoning, f"<think>{reasoning}</think><answer>{said}</answer>"


def attempt_rows(step):
    """The Solver attempts that rated the step's proposals: no advantage, no reward parts."""
    rows = []
    for group, (task_id, flags) in enumerate(ATTEMPTS[step]):
        for i, correct in enumerate(flags):
            said, reasoning, completion = answering(task_id, correct, i)
            rows.append(
                {
                    "run": "selfplay",
                    "step": step,
                    "role": "attempt",
                    "group": group,
                    **task_fields(task_id),
                    "completion": completion,
                    "completion_tokens": len(completion) // 3,
                    "reward": float(correct),
                    "verdict_kind": "answer",
                    "verdict_parsed": str(said),
                    "verdict_score": float(correct),
                    "verdict_reason": "correct" if correct else "wrong",
                    "reasoning_chars": len(reasoning),
                    "reasoning_steps": 1,
                    "self_correction_lexical": False,
                    "self_correction_verified": False,
                    "verification": i == 1,
                    "backtracking": False,
                    "asked": False,
                    "clarify_outcome": "true_negative",
                }
            )
    return rows


def training_rows(step):
    """The Solver's GRPO rows on accepted tasks, in the usual training schema."""
    rows = []
    for group, (task_id, flags) in enumerate(TRAINING[step]):
        for i, correct in enumerate(flags):
            said, reasoning, completion = answering(task_id, correct, i)
            row = make_row(step, group, i, "arithmetic", 1, 0, correct)
            row.update(task_fields(task_id))
            row.update(
                completion=completion,
                verdict_parsed=str(said),
                verification=i == 1,
                self_correction_lexical=False,
                self_correction_verified=False,
                run="selfplay",
            )
            rows.append(row)
    return with_advantages(rows)


SP_FILES = {
    # (step, role): the rows of that file
    **{(s, "challenger"): challenger_rows(s) for s in PROPOSALS},
    **{(s, "attempt"): attempt_rows(s) for s in ATTEMPTS},
    **{(s, "solver"): training_rows(s) for s in TRAINING},
}


def sp_rows():
    """Every row of the mixed run in the order ``query`` returns them: by step, then role."""
    return [row for key in sorted(SP_FILES) for row in SP_FILES[key]]


@pytest.fixture(scope="module")
def mixed(tmp_path_factory):
    folder = tmp_path_factory.mktemp("selfplay-run")
    writer = TranscriptWriter(folder / "transcripts")
    for (step, role), rows in SP_FILES.items():
        writer.write(step, rows, role=role)
    return folder


def test_the_mixed_run_has_what_the_tests_need():
    rows = sp_rows()
    columns = {role: set() for role in ("challenger", "attempt", "solver")}
    for row in rows:
        columns[row["role"]] |= set(row)
    assert "advantage" not in columns["attempt"] and "verdict_score" not in columns["challenger"]
    assert "proposal_status" not in columns["solver"] and "reward_correct" in columns["solver"]
    statuses = Counter(r["proposal_status"] for r in rows if r["role"] == "challenger")
    assert set(statuses) == set(PROPOSAL_STATUSES)
    assert all(r["task_id"] is None for r in SP_FILES[3, "challenger"])  # all-null columns


def sp_ids(rows):
    return [(r["step"], r["role"], r["group"], r["completion"]) for r in rows]


def sp_expected(keep):
    return sp_ids([r for r in sp_rows() if keep(r)])


@pytest.mark.parametrize(
    "kwargs,keep",
    [
        ({}, lambda r: True),
        ({"role": "challenger"}, lambda r: r["role"] == "challenger"),
        ({"role": "attempt"}, lambda r: r["role"] == "attempt"),
        ({"role": "solver,attempt"}, lambda r: r["role"] != "challenger"),
        ({"reward": ">0"}, lambda r: r["reward"] > 0),
        ({"reward": "<0"}, lambda r: r["reward"] < 0),
        ({"task_id": A}, lambda r: r["task_id"] == A),
        ({"level": 1}, lambda r: r["difficulty"] == 1),
        ({"steps": "2:3"}, lambda r: 2 <= r["step"] <= 3),
        ({"behaviour": "verification"}, lambda r: r.get("verification") is True),
        ({"behaviour": "true_negative"}, lambda r: r["role"] != "challenger"),
        ({"behaviour": "asked", "role": "challenger"}, lambda r: False),
        ({"status": "unsafe"}, lambda r: r.get("proposal_status") == "unsafe"),
        (
            {"status": ["invalid", "unparsable"]},
            lambda r: r.get("proposal_status") in ("invalid", "unparsable"),
        ),
        ({"status": "duplicate", "task_id": A}, lambda r: r.get("proposal_status") == "duplicate"),
        ({"status": "ok", "role": "solver"}, lambda r: False),
        (
            {"status": "invalid", "steps": "3"},
            lambda r: r["step"] == 3 and r.get("proposal_status") == "invalid",
        ),
        # Step 3's proposals were all rejected: its task columns are all null in the file.
        ({"role": "challenger", "steps": "3", "task_id": A}, lambda r: False),
        ({"role": "challenger", "steps": "3", "level": 1}, lambda r: False),
        (
            {"reward": "<=0", "status": "ok"},
            lambda r: r.get("proposal_status") == "ok" and r["reward"] <= 0,
        ),
    ],
)
def test_filters_on_a_run_whose_roles_have_different_columns(mixed, kwargs, keep):
    assert sp_ids(query(mixed, **kwargs).to_dict("records")) == sp_expected(keep)


def test_equal_reward_groups_on_the_mixed_run(mixed):
    frame = query(mixed, equal_reward_groups=True, columns=["step", "role", "group"])
    groups = set(map(tuple, frame.drop_duplicates().to_numpy().tolist()))
    rows = sp_rows()
    want = {
        (r["step"], r["role"], r["group"])
        for r in rows
        if len(
            {
                q["reward"]
                for q in rows
                if (q["step"], q["role"], q["group"]) == (r["step"], r["role"], r["group"])
            }
        )
        == 1
    }
    assert groups == want and (3, "challenger", 0) in want and (1, "solver", 1) in want


def test_columns_of_the_other_roles_read_as_null(mixed):
    frame = query(mixed, steps="0:1", columns=["role", "verdict_score", "proposal_status"])
    by_role = {role: part for role, part in frame.groupby("role")}
    assert by_role["challenger"]["verdict_score"].isna().all()
    assert by_role["attempt"]["proposal_status"].isna().all()
    assert by_role["solver"]["proposal_status"].isna().all()
    assert by_role["challenger"]["proposal_status"].notna().all()


def test_bad_status_is_a_usage_error_listing_the_statuses(mixed):
    with pytest.raises(UsageError) as err:
        query(mixed, status="rejected")
    assert "--status 'rejected'" in str(err.value)
    for name in PROPOSAL_STATUSES:
        assert name in str(err.value)


def test_commands_on_the_mixed_run(mixed, capsys):
    cases = [
        ((), lambda r: True),
        (("--role", "challenger"), lambda r: r["role"] == "challenger"),
        (("--role", "attempt"), lambda r: r["role"] == "attempt"),
        (("--reward", ">0"), lambda r: r["reward"] > 0),
        (("--task-id", A), lambda r: r["task_id"] == A),
        (("--behaviour", "verification"), lambda r: r.get("verification") is True),
        (
            ("--status", "unsafe", "--status", "invalid"),
            lambda r: r.get("proposal_status") in ("unsafe", "invalid"),
        ),
    ]
    for argv, keep in cases:
        command(mixed, *argv, "--json", "--limit", "0")
        rows = json_lines(capsys)
        assert sp_ids(rows) == sp_expected(keep), argv
    # A row of JSON is the unified row: its role's values, null for the other roles' columns,
    # integers where integers were written (a rejected proposal's difficulty is null).
    command(mixed, "--steps", "0", "--role", "challenger", "--json", "--limit", "0")
    rows = json_lines(capsys)
    built = SP_FILES[0, "challenger"]
    assert [{k: r[k] for k in b} for r, b in zip(rows, built, strict=True)] == built
    assert rows[0]["difficulty"] == 1 and isinstance(rows[0]["difficulty"], int)
    assert rows[1]["difficulty"] is None


def test_default_view_shows_proposal_statuses(mixed, capsys, wide):
    command(mixed, "--role", "challenger", "--steps", "0", "--limit", "0")
    out = text(capsys)
    assert "unsafe (forbidden_character)" in out and "duplicate (seen_before)" in out
    assert "<task>95+7</task>" in out and "8 of 8 rows matched" in out
    assert " 1.0 " not in out  # the level of a proposal is an integer, not pandas' float
    command(mixed, "--behaviour", "verification", "--role", "challenger")
    proposals = sum(r["role"] == "challenger" for r in sp_rows())
    assert f"0 of {proposals} rows matched" in capsys.readouterr().out  # no such column


def test_group_view_of_proposals_keeps_each_proposals_task(mixed, capsys, wide):
    command(mixed, "--group", "--role", "challenger", "--steps", "0", "--json")
    groups = json_lines(capsys)
    assert [(g["step"], g["group"]) for g in groups] == [(0, 0), (0, 1)]
    first = groups[0]
    assert first["prompt"] == "Propose a task for arithmetic." and "task_id" not in first
    built = SP_FILES[0, "challenger"][:G]
    assert [c["task_id"] for c in first["completions"]] == [r["task_id"] for r in built]
    assert [c["answer"] for c in first["completions"]] == [r["answer"] for r in built]

    command(mixed, "--group", "--status", "unsafe", "--steps", "2")
    out = text(capsys)
    assert "step 2 · challenger · group 0 · arithmetic" in out
    assert "#0 · proposal duplicate (seen_before) · task " + A in out
    assert "'Compute 7+1.' = 8 · solve rate 75% of 4" in out
    assert "#2* · proposal unsafe (forbidden_character)" in out  # the match, marked
    assert "learnability 0.5, repetition 1" in out and "verdict" not in out
    assert "1 of 1 matching groups shown; 1 of 4 rows matched" in out

    command(mixed, "--group", "--role", "solver", "--steps", "1", "--limit", "1")
    out = text(capsys)
    assert f"step 1 · solver · group 0 · arithmetic level 1 · {A}" in out
    assert "prompt: Compute 7+1.\nanswer: 8" in out
    assert "learnability" not in out  # only the reward parts a row has


def chain_reference(task_id):
    rows = sp_rows()
    return {
        role: [r for r in rows if r["role"] == role and r["task_id"] == task_id]
        for role in ("challenger", "attempt", "solver")
    }


@pytest.mark.parametrize("task_id", [A, B, C, D])
def test_chain_follows_a_task_from_proposal_to_training(mixed, task_id):
    links = chain(mixed, task_id)
    assert links == chain_reference(task_id)  # every value, each role with its own columns


def test_chain_of_a_task_proposed_three_times(mixed):
    links = chain(mixed, A)
    assert [(r["step"], r["proposal_status"]) for r in links["challenger"]] == [
        (0, "ok"),
        (0, "duplicate"),
        (2, "duplicate"),
    ]
    assert [r["step"] for r in links["attempt"]] == [0] * 4 + [2] * 4
    assert [r["step"] for r in links["solver"]] == [1] * 4 + [4] * 4
    assert "advantage" not in links["attempt"][0] and "verdict_score" not in links["challenger"][0]
    assert chain(mixed, B)["solver"] == []  # rated, never trained on


def test_chain_of_an_unknown_task_is_a_usage_error_naming_it(mixed):
    with pytest.raises(UsageError, match="'arithmetic/proposed/1/nosuch'"):
        chain(mixed, "arithmetic/proposed/1/nosuch")
    with pytest.raises(UsageError, match="--chain 'nosuch'"):
        command(mixed, "--chain", "nosuch")
    with pytest.raises(UsageError, match="other filters"):
        command(mixed, "--chain", B, "--steps", "3:")
    with pytest.raises(UsageError, match="name different tasks"):
        command(mixed, "--chain", A, "--task-id", B)


def test_chain_json_is_its_rows_in_chain_order(mixed, capsys):
    command(mixed, "--chain", A, "--json", "--limit", "0")
    rows = json_lines(capsys)
    want = [r for role in chain_reference(A).values() for r in role]
    assert rows == want
    assert [(r["role"], r["step"]) for r in rows] == (
        [("challenger", 0), ("challenger", 0), ("challenger", 2)]
        + [("attempt", 0)] * 4
        + [("attempt", 2)] * 4
        + [("solver", 1)] * 4
        + [("solver", 4)] * 4
    )
    # --limit counts the attempt and training steps; every proposal is kept.
    command(mixed, "--chain", A, "--json", "--limit", "2")
    rows = json_lines(capsys)
    assert [(r["role"], r["step"]) for r in rows] == [
        r
        for r in [(r["role"], r["step"]) for r in want]
        if r[0] == "challenger" or r in {("attempt", 0), ("attempt", 2)}
    ]
    # Other filters narrow the chain: only its training rows with a reward above 1.5.
    command(mixed, "--chain", A, "--reward", ">1.5", "--json", "--limit", "0")
    rows = json_lines(capsys)
    assert sp_ids(rows) == sp_expected(lambda r: r["task_id"] == A and r["reward"] > 1.5)


def test_chain_view_shows_proposal_attempts_and_training(mixed, capsys, wide):
    command(mixed, "--chain", A, "--limit", "0")
    out = text(capsys)
    assert f"task {A}  (arithmetic level 1)" in out
    assert "prompt: Compute 7+1.\nanswer: 8" in out
    assert "proposed: 3 proposals" in out
    assert "step 0 · group 0 · proposal ok · solve rate 25% of 4 · reward 0.5" in out
    assert "step 2 · group 0 · proposal duplicate (seen_before) · solve rate 75% of 4" in out
    assert "(learnability 0.5, repetition 1)" in out and "<task>7+1</task>" in out
    attempts = chain_reference(A)["attempt"]
    correct = sum(r["verdict_score"] >= 1 for r in attempts)
    assert f"rated: {len(attempts)} attempts, {correct} correct" in out
    assert "trained: 8 solver rows in 2 steps" in out
    for step, role, n, solved in ((0, "attempt", 4, 25), (2, "attempt", 4, 75)):
        assert re.search(rf"^\s*{step}\s+{role}\s+{n}\s+\S+\s+{solved}%", out, re.MULTILINE)
    for step, solved in ((1, 50), (4, 75)):
        assert re.search(rf"^\s*{step}\s+solver\s+4\s+\S+\s+{solved}%", out, re.MULTILINE)
    assert "step 0 · attempt" in out and "step 4 · solver" in out
    assert "#0 · reward 1 · verdict 1 correct parsed '8'" in out  # an attempt: no advantage
    assert "#0 · reward 2.1 (correct 1, format 1, clarify 1) · advantage" in out  # training
    assert "<think>7+1=9\n    check: ok</think><answer>9</answer>" in out  # in full
    total = len(sp_rows())
    assert f"4 of 4 steps shown; 19 of {total} rows matched" in out

    command(mixed, "--chain", B, "--limit", "0")
    out = text(capsys)
    assert "rated: 4 attempts, 0 correct" in out and "trained: 0 solver rows in 0 steps" in out


def test_help_names_the_self_play_options():
    sub = argparse.ArgumentParser(prog="selfplay").add_subparsers()
    views.register(sub)
    text = sub.choices["transcripts"].format_help()
    for word in ("--chain", "--status", "unsafe", "duplicate", "challenger", "attempt"):
        assert word in text


@pytest.mark.skipif(not _hooked(), reason="transcripts is not registered in selfplay.cli yet")
def test_an_unknown_chain_is_one_line_and_exit_2(mixed, capsys):
    from selfplay.cli import main

    assert main(["transcripts", str(mixed), "--chain", "arithmetic/proposed/1/nosuch"]) == 2
    err = capsys.readouterr().err
    assert "'arithmetic/proposed/1/nosuch'" in err and err.count("\n") == 1


def test_diff_on_the_mixed_run_names_the_proposals(mixed, capsys):
    command(mixed, "--diff", A, "--json", "--limit", "0")
    steps = json_lines(capsys)
    want = sorted({(r["step"], r["role"]) for r in sp_rows() if r["task_id"] == A})
    assert [(s["step"], s["role"]) for s in steps] == want
    assert steps[1] == {**steps[1], "role": "challenger", "n": 2}
    assert steps[1]["answers"] == {"(proposal ok)": 1, "(proposal duplicate)": 1}
