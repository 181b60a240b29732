"""Checkpoints a killed run resumes from, and the rewind that makes a resume exact.

TRL's trainer writes ``checkpoints/checkpoint-<step>/`` (model, optimizer, scheduler, RNG
state, ``trainer_state.json``) but not atomically. After it has finished, the ``Checkpointer``
callback adds ``selfplay_state.json`` (the challenger's task counter, the curriculum, the probe
history, the transcript counters, the length of ``metrics.jsonl``), written to a temporary
name and renamed. That file is the commit mark: a checkpoint without it is incomplete and is
never resumed from. Old checkpoints are removed only after a newer one is complete, so a
kill at any moment leaves at least one complete checkpoint once the first has been written.

Resuming from step ``S`` rewinds what the killed run wrote after it: transcript files of
steps ``>= S`` (recorded by steps the checkpoint does not include) move to
``discarded/resume-<S>-<time>/`` (kept for forensics, outside ``transcripts/``), half-written
temporary files are removed, and ``metrics.jsonl`` is cut back to the lines it had at the
checkpoint. The resumed run then writes those steps afresh, so every completed step has its
transcript rows exactly once and metrics continue without a gap or a repeat.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from selfplay.transcripts import parse_name

STATE_FILE = "selfplay_state.json"
_CHECKPOINT = re.compile(r"checkpoint-(\d+)")


def _aside(path: Path) -> Path:
    """The hidden temporary sibling ``path`` is built in before it is renamed into place."""
    return path.with_name(f".{path.name}.tmp-{os.getpid()}")


def write_text_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` via a temporary file and a rename."""
    tmp = _aside(path)
    tmp.write_text(text)
    os.replace(tmp, path)


def write_json_atomic(path: Path, value: Any) -> None:
    """Write ``value`` as JSON to ``path`` via a temporary file and a rename."""
    write_text_atomic(path, json.dumps(value, indent=2))


def build_dir_atomic(path: Path, fill: Callable[[Path], Any]) -> None:
    """Create the folder ``path`` whole: ``fill`` writes into a temporary sibling, which then
    replaces ``path`` (an existing ``path`` is removed only once the new one is complete)."""
    tmp = _aside(path)
    shutil.rmtree(tmp, ignore_errors=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    fill(tmp)
    if path.exists():
        shutil.rmtree(path)
    os.replace(tmp, path)


def checkpoints(folder: Path) -> list[tuple[int, Path]]:
    """``(step, path)`` of every checkpoint folder under ``folder``, complete or not, by step."""
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := _CHECKPOINT.fullmatch(p.name))]
    return sorted(found)


def is_complete(checkpoint: Path) -> bool:
    """A checkpoint is complete when its selfplay state was committed and reads back."""
    try:
        json.loads((checkpoint / STATE_FILE).read_text())
    except (OSError, ValueError):
        return False
    return True


def latest_checkpoint(folder: Path) -> Path | None:
    """The complete checkpoint with the highest step, or None."""
    complete = [p for _, p in checkpoints(folder) if is_complete(p)]
    return complete[-1] if complete else None


def load_state(checkpoint: Path) -> dict[str, Any]:
    """The selfplay state committed with ``checkpoint``."""
    return json.loads((checkpoint / STATE_FILE).read_text())


class Checkpointer(TrainerCallback):
    """Commits selfplay's own state into each checkpoint TRL writes, then prunes old ones."""

    def __init__(self, state: Callable[[int], dict[str, Any]], keep: int):
        self.state = state
        """``state(step)`` -> what a resume needs, as JSON-ready values."""
        self.keep = keep

    def on_save(self, args, state, control, **kwargs):
        if not state.is_world_process_zero:  # one process of a launched run commits
            return
        folder = Path(args.output_dir)
        checkpoint = folder / f"checkpoint-{state.global_step}"
        write_json_atomic(checkpoint / STATE_FILE, self.state(state.global_step))
        complete = [p for _, p in checkpoints(folder) if is_complete(p)]
        for old in complete[: -self.keep]:
            shutil.rmtree(old)


def rewind(run_dir: Path, step: int, metrics_lines: int) -> dict[str, int]:
    """Undo what a killed run wrote after its checkpoint at ``step``; return what was moved.

    Transcripts of steps ``>= step`` move to ``discarded/``; temporary files are removed;
    ``metrics.jsonl`` keeps its first ``metrics_lines`` lines; checkpoints after ``step``
    (necessarily incomplete) are removed.
    """
    moved = 0
    folder = run_dir / "transcripts"
    aside = run_dir / "discarded" / f"resume-{step}-{time.strftime('%Y%m%d-%H%M%S')}"
    for path in sorted(folder.glob("*")) if folder.is_dir() else []:
        if path.name.startswith("."):  # a write the kill interrupted
            path.unlink()
        elif (name := parse_name(path.name)) and name[1] >= step:
            aside.mkdir(parents=True, exist_ok=True)
            os.replace(path, aside / path.name)
            moved += 1
    metrics = run_dir / "metrics.jsonl"
    cut = 0
    if metrics.exists():
        lines = metrics.read_text().splitlines(keepends=True)
        cut = max(0, len(lines) - metrics_lines)
        write_text_atomic(metrics, "".join(lines[:metrics_lines]))
    for later, path in checkpoints(run_dir / "checkpoints"):
        if later > step or not is_complete(path):
            shutil.rmtree(path)
    return {"transcripts_discarded": moved, "metrics_lines_cut": cut}
