"""Every column a transcript row can have and every behaviour tag, each name written once.

A transcript row is one completion (``selfplay.transcripts.writer``). Which columns a row has
depends on its ``role``: the tuples at the end (``SOLVER_COLUMNS`` …) list them in the order the
row is written, which is the order of the Parquet columns. Two families of columns are named
by pattern: ``reward_<component>`` (one per reward component, just before ``reward``) and, on
eval rows, ``greedy_<measure>`` (the continuous measures of the greedy completion, last).
The writer, the query layer, the report and the CLI import these names instead of spelling
them.
"""

from __future__ import annotations

import re

from envs import REJECTIONS

# -- every row ------------------------------------------------------------------------------

RUN = "run"
"""The run's name (an eval's label)."""
STEP = "step"
"""The training step the completion was generated at."""
ROLE = "role"
"""Who wrote it: one of ``ROLES``."""
GROUP = "group"
"""The GRPO group within the step: the completions of one prompt."""

# -- the task (``selfplay.recorder.task_fields``) -------------------------------------------

TASK_ID = "task_id"
"""The task's id (``env/seed/level/index``, or ``env/proposed/...`` for a proposed task)."""
ENV = "env"
"""The environment's name."""
DIFFICULTY = "difficulty"
"""The task's level; null on a proposal that gave no task."""
SPECIFIED = "specified"
"""False for an underspecified task (one that needs a clarifying question)."""
PROMPT = "prompt"
"""The task as the model saw it (the Challenger's proposal prompt on its rows)."""
ANSWER = "answer"
"""The task's true answer; null when it has none."""

# -- the completion -------------------------------------------------------------------------

COMPLETION = "completion"
"""What the model wrote (a dialogue's turns joined, the replies left out)."""
COMPLETION_TOKENS = "completion_tokens"
"""Tokens of the completion."""
REASONING_TOKENS = "reasoning_tokens"
"""Tokens of its reasoning (the ``<think>`` content, or the text before the final tag)."""

# -- reward ---------------------------------------------------------------------------------

REWARD_PREFIX = "reward_"
"""``reward_<component>``: one reward component's value, null where it does not apply."""
REWARD = "reward"
"""The total: the weighted sum of the components (an attempt's: its verdict score)."""
ADVANTAGE = "advantage"
"""The GRPO advantage of the completion in its group; null on eval rows, absent on attempts."""

# -- the verdict (``envs.Verdict``) ---------------------------------------------------------

VERDICT_KIND = "verdict_kind"
"""What the completion ended with: ``answer``, ``ask`` or ``malformed``."""
VERDICT_PARSED = "verdict_parsed"
"""The final answer (or question) as the judge read it."""
VERDICT_SCORE = "verdict_score"
"""The judge's score in [0, 1]; 1 is correct."""
VERDICT_REASON = "verdict_reason"
"""Why the judge scored it so, one word."""
TRUTH_SCORE = "truth_score"
"""The environment's own score beside a judge that is not it (NaN without ground truth);
present only then."""

# -- behaviour tags (``selfplay.behaviours.tag``) -------------------------------------------

REASONING_CHARS = "reasoning_chars"
"""Characters of the reasoning."""
REASONING_STEPS = "reasoning_steps"
"""Non-empty lines of the reasoning."""
SELF_CORRECTION_LEXICAL = "self_correction_lexical"
"""The reasoning says a correction marker ("wait", "actually")."""
SELF_CORRECTION_VERIFIED = "self_correction_verified"
"""A result really changed on the way to a correct final answer."""
VERIFICATION = "verification"
"""The reasoning re-checks a result."""
BACKTRACKING = "backtracking"
"""The reasoning abandons an approach."""
ASKED = "asked"
"""The completion ended with a clarifying question (a dialogue: its first turn did)."""
CLARIFY_OUTCOME = "clarify_outcome"
"""Asking as a classifier of underspecified tasks: one of ``CLARIFY_OUTCOMES``."""
STATES_CONFIDENCE = "states_confidence"
"""The final answer is followed by a readable ``<confidence>``."""
CONFIDENCE = "confidence"
"""The stated confidence p; null when none was stated."""

TAGS = (
    SELF_CORRECTION_LEXICAL,
    SELF_CORRECTION_VERIFIED,
    VERIFICATION,
    BACKTRACKING,
    ASKED,
    STATES_CONFIDENCE,
)
"""The boolean tag columns: what ``selfplay transcripts --behaviour`` accepts besides a
clarify outcome."""
TAG_COLUMNS = (
    REASONING_CHARS,
    REASONING_STEPS,
    SELF_CORRECTION_LEXICAL,
    SELF_CORRECTION_VERIFIED,
    VERIFICATION,
    BACKTRACKING,
    ASKED,
    CLARIFY_OUTCOME,
    STATES_CONFIDENCE,
    CONFIDENCE,
)
"""Every column ``selfplay.behaviours.tag`` adds to a row, in its order."""

TRUE_POSITIVE = "true_positive"
"""Asked on an underspecified task."""
FALSE_POSITIVE = "false_positive"
"""Asked on a specified task."""
FALSE_NEGATIVE = "false_negative"
"""Did not ask on an underspecified task."""
TRUE_NEGATIVE = "true_negative"
"""Did not ask on a specified task: the common case."""
CLARIFY_OUTCOMES = (TRUE_POSITIVE, FALSE_POSITIVE, FALSE_NEGATIVE, TRUE_NEGATIVE)
"""The values of ``clarify_outcome``."""

# -- a dialogue (``selfplay.dialogue.transcript_fields``) -----------------------------------

TURNS = "turns"
"""Every turn of the dialogue, as JSON."""
REPLIES = "replies"
"""How many replies the model got."""
FINAL_TASK_ID = "final_task_id"
"""The task as the replies left it."""
FINAL_ANSWER = "final_answer"
"""That task's answer."""

# -- a Challenger proposal (``selfplay.play``) ----------------------------------------------

PROPOSED_TASK = "proposed_task"
"""The task the proposal gave; null when it gave none."""
PROPOSAL_STATUS = "proposal_status"
"""``ok`` or why the proposal was rejected: one of ``PROPOSAL_STATUSES``."""
PROPOSAL_DETAIL = "proposal_detail"
"""What exactly was wrong with a rejected proposal."""
SOLVE_RATE = "solve_rate"
"""The share of Solver attempts that solved the proposed task."""
ATTEMPTS = "attempts"
"""How many Solver attempts rated it."""

PROPOSAL_OK = "ok"
"""The ``proposal_status`` of a proposal that gave a valid task."""
PROPOSAL_STATUSES = (PROPOSAL_OK, *REJECTIONS)
"""The values of ``proposal_status``."""

# -- an eval sample (``selfplay.evaluate``) -------------------------------------------------

SAMPLE = "sample"
"""-1 for the greedy completion of a task, then 0, 1, … for the sampled ones."""
TEMPERATURE = "temperature"
"""0 for the greedy completion, 1 for the sampled ones."""
GREEDY_PREFIX = "greedy_"
"""``greedy_<measure>``: a continuous measure of the greedy completion (``selfplay.continuous``),
null on sampled rows."""

# -- roles ----------------------------------------------------------------------------------

SOLVER = "solver"
"""A training completion of the Solver (``selfplay train``, and self-play's Solver phase)."""
CHALLENGER = "challenger"
"""A Challenger's proposal of a task: the only rows with a ``proposal_status``."""
ATTEMPT = "attempt"
"""A Solver attempt that rated a proposed task (not trained on: no advantage)."""
EVAL = "eval"
"""A held-out completion of ``selfplay eval``."""
ROLES = (SOLVER, EVAL, CHALLENGER, ATTEMPT)
"""Every role, each a file per step: ``<role>-step-<step>.parquet``."""

# -- columns by role, in the order rows are written -----------------------------------------

HEAD_COLUMNS = (RUN, STEP, ROLE, GROUP)
"""What every row starts with."""
GROUP_KEYS = (STEP, ROLE, GROUP)
"""The columns that name one GRPO group: the completions of one task at one step."""
TASK_COLUMNS = (TASK_ID, ENV, DIFFICULTY, SPECIFIED, PROMPT, ANSWER)
"""The task's columns: shared by a training group's completions."""
VERDICT_COLUMNS = (VERDICT_KIND, VERDICT_PARSED, VERDICT_SCORE, VERDICT_REASON)
"""The judge's verdict."""
DIALOGUE_COLUMNS = (TURNS, REPLIES, FINAL_TASK_ID, FINAL_ANSWER)
"""What a dialogue run adds, last."""
PROPOSAL_COLUMNS = (PROPOSED_TASK, PROPOSAL_STATUS, PROPOSAL_DETAIL, SOLVE_RATE, ATTEMPTS)
"""What a Challenger row has instead of a verdict."""

SOLVER_COLUMNS = (
    *HEAD_COLUMNS,
    *TASK_COLUMNS,
    COMPLETION,
    COMPLETION_TOKENS,
    REASONING_TOKENS,
    REWARD,  # after the reward_<component> columns
    ADVANTAGE,
    *VERDICT_COLUMNS,
    TRUTH_SCORE,  # with a judge that is not the ground truth
    *TAG_COLUMNS,
    *DIALOGUE_COLUMNS,  # in dialogue runs
)
"""A ``solver`` row's columns (``selfplay.recorder.Recorder``)."""
CHALLENGER_COLUMNS = (
    *HEAD_COLUMNS,
    *TASK_COLUMNS,
    COMPLETION,
    COMPLETION_TOKENS,
    *PROPOSAL_COLUMNS,
    REWARD,  # after reward_learnability, reward_repetition (and reward_climb, when on)
    ADVANTAGE,
)
"""A ``challenger`` row's columns."""
ATTEMPT_COLUMNS = (
    *HEAD_COLUMNS,
    *TASK_COLUMNS,
    COMPLETION,
    COMPLETION_TOKENS,
    REWARD,
    *VERDICT_COLUMNS,
    *TAG_COLUMNS,
)
"""An ``attempt`` row's columns."""
EVAL_COLUMNS = (
    *HEAD_COLUMNS,
    SAMPLE,
    TEMPERATURE,
    *TASK_COLUMNS,
    COMPLETION,
    COMPLETION_TOKENS,
    REASONING_TOKENS,
    REWARD,  # after the reward_<component> columns
    ADVANTAGE,
    *VERDICT_COLUMNS,
    *TAG_COLUMNS,
)
"""An ``eval`` row's columns; the ``greedy_<measure>`` columns follow."""
COLUMNS_BY_ROLE = {
    SOLVER: SOLVER_COLUMNS,
    CHALLENGER: CHALLENGER_COLUMNS,
    ATTEMPT: ATTEMPT_COLUMNS,
    EVAL: EVAL_COLUMNS,
}
"""Role -> its columns, in order, the ``reward_``/``greedy_`` families left out."""
COLUMNS = tuple(dict.fromkeys(c for columns in COLUMNS_BY_ROLE.values() for c in columns))
"""Every column named here, once."""

COLUMN_TYPES = {CONFIDENCE: "float64"}
"""Columns a file types as given even when all its rows hold None: pyarrow would make them
null columns, which ``pandas.read_parquet`` of the whole folder cannot merge with the same
column typed in another file (a step where no completion stated a confidence)."""


def reward_column(component: str) -> str:
    """The column of one reward component: ``reward_<component>``."""
    return REWARD_PREFIX + component


def is_reward_component(column: str) -> bool:
    """Whether ``column`` is a reward component's (``reward_<component>``)."""
    return column.startswith(REWARD_PREFIX)


def greedy_column(measure: str) -> str:
    """The column of a continuous measure of the greedy completion: ``greedy_<measure>``."""
    return GREEDY_PREFIX + measure


FAMILIES = {REWARD_PREFIX: "component", GREEDY_PREFIX: "measure"}
"""The prefixes of the column families, and what the rest of such a column's name names."""


def column_meanings() -> dict[str, str]:
    """Column (or family prefix) -> its meaning on one line: the docstring under its name
    above, read from this module's source, so that each meaning is written once, beside the
    name (the dataset card of ``selfplay export`` lists them)."""
    import ast
    from pathlib import Path

    wanted = {*COLUMNS, *FAMILIES}
    tree = ast.parse(Path(__file__).read_text(encoding="utf-8"))
    meanings = {}
    for node, doc in zip(tree.body, tree.body[1:], strict=False):
        if (
            isinstance(node, ast.Assign)
            and isinstance(node.value, ast.Constant)
            and node.value.value in wanted
            and isinstance(doc, ast.Expr)
            and isinstance(doc.value, ast.Constant)
            and isinstance(doc.value.value, str)
        ):
            meaning = " ".join(doc.value.value.split())
            # "one of ``ROLES``": the values themselves, for a reader without this module
            meanings[node.value.value] = re.sub(r"``([A-Z_]+)``", _values, meaning)
    return meanings


def _values(name: re.Match) -> str:
    value = globals().get(name[1])
    return ", ".join(value) if isinstance(value, tuple) else name[0]


def column_meaning(column: str, meanings: dict[str, str] | None = None) -> str | None:
    """The meaning of ``column``, a ``reward_``/``greedy_`` family's from its prefix's (with
    the component or measure named); None for a column this module does not name.
    ``meanings``: ``column_meanings()``, when the caller has it already."""
    meanings = column_meanings() if meanings is None else meanings
    if column in meanings:
        return meanings[column]
    for prefix, part in FAMILIES.items():
        if column.startswith(prefix) and prefix in meanings:
            shared = meanings[prefix].split(": ", 1)[-1]
            return f"{shared[:1].upper()}{shared[1:]} ({part} {column.removeprefix(prefix)!r})"
    return None
