"""Proposals and a ModelChallenger for tests that call it on hand-written proposals."""

from __future__ import annotations

from envs import load_env, task_from_proposal
from selfplay.challenger import Proposal

ARITHMETIC = load_env("arithmetic")


def proposal(text: str, solve_rate: float | None = None, status: str = "ok") -> Proposal:
    """A proposal of the arithmetic expression ``text``, rated ``solve_rate``; junk is rejected."""
    p = Proposal("arithmetic", f"<task>{text}</task>", status=status)
    try:
        p.task = task_from_proposal(ARITHMETIC, p.text)
    except ValueError:
        p.status = "unparsable"
    p.solve_rate = solve_rate if p.task is not None else None
    return p


def unit_model_challenger(envs: dict, model_dir, tmp_path, play):
    """A ``ModelChallenger`` over ``envs`` whose Solver is the model at ``model_dir``, judged by
    the program judge, writing its rows under ``tmp_path`` and printing nothing (for tests that
    call it on hand-written proposals)."""
    from types import SimpleNamespace

    from selfplay.challenger import ModelChallenger, TaskPool
    from selfplay.judges import make_judge
    from selfplay.models import load_model
    from selfplay.transcripts import TranscriptWriter

    solver, tokenizer = load_model(str(model_dir))
    return ModelChallenger(
        envs=envs,
        play=play,
        solver=solver,
        tokenizer=tokenizer,
        judge=make_judge("program", envs),
        pool=TaskPool(play.window),
        writer=TranscriptWriter(tmp_path / "transcripts"),
        run_name="unit",
        system="",
        max_new_tokens=8,
        scale_rewards="group",
        console=SimpleNamespace(print=lambda *a, **k: None),
    )
