"""Behaviour pinned across refactors: short seeded runs and their analysis, compared with files.

Five short runs of the tiny organism cover the paths a batch can take: the program judge on
three environments with the adaptive curriculum, the majority judge (hacking section), the model
judge (the policy judging itself), a clarify dialogue, and shared-model self-play (of the organism that also learnt to propose tasks). For each, the
transcripts (every column), ``metrics.jsonl`` and, for two of them, ``selfplay analyze``'s
``summary.json`` and the report's text are reduced to plain JSON (floats to 6 significant
digits; wall times, dates and temporary paths left out) and compared with
``tests/data/golden/<case>.json``, written from the code before the refactor of issue 17.

Changed on purpose since, and only there: ``summary.json``'s ``verdicts`` and
``verdict_counts`` are ``conclusions`` and ``conclusion_counts`` (each entry's ``verdict`` its
``conclusion``; the report says "conclusion" twice), and the model judge's ``judge/model_calls``
and ``judge/cache_hits``, which counted a second judge's cache hits (model calls always 0)
before each batch was judged once.

Since issue 18: runs record ``sampler`` and ``precision`` in their config (``summary.json``),
and generation goes through ``selfplay.decode.Sampler``, which draws the same tokens, so
nothing else changed.

Since issue 19: the curriculum's config has ``window_unit``, ``patience``, ``ema`` and
``explore`` (``summary.json``, at their defaults, which move levels exactly as before), and
the run config has ``tasks`` (empty: the curriculum sets the tasks, as before).

Since the Challenger's climb term: the run config's ``selfplay`` section has
``frontier_weight``, ``frontier_at`` and ``frontier_ema`` (``summary.json``, at their defaults,
where the term is off and the rewards, transcripts and metrics are exactly as before).

Since issue 20: the run config has ``report_to`` (``summary.json``, at its default,
"tensorboard", which writes TensorBoard's files as before).

Floats are compared within a tolerance and everything else exactly (``_difference``). A CPU of
another kind can still draw a different token once float drift in training moves a sampling
boundary (shared-model self-play on an AMD CPU, at HEAD before issue 18's changes too), so a
case may have variants, ``<case>.<variant>.json``, one per kind of machine recorded; a run
passes if it matches one of them.

To rewrite the files on purpose (a change of behaviour the note explains):
``SELFPLAY_GOLDEN_WRITE=1 pytest tests/test_golden.py``; to record another machine's variant
of the files, ``SELFPLAY_GOLDEN_WRITE=<variant>`` (say ``amd``), and keep only the variants
that differ from the main files.
"""

from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path

import pytest

GOLDEN = Path(__file__).parent / "data" / "golden"

COMMON = """
name: {name}
model: {model}
runs_dir: {runs}
seed: 7
probe: {{every: 2, tasks_per_level: 2, max_new_tokens: 16}}
grpo:
{max_steps}  num_generations: 4
  per_device_train_batch_size: 8
  max_completion_length: 24
  learning_rate: 0.002
"""

CASES = {
    "program": """
envs:
  arithmetic: {weight: 2, levels: [1, 2]}
  countdown: {weight: 1, levels: [1, 2]}
  clarify: {weight: 1, levels: [1, 2]}
curriculum: {mode: adaptive, band: [0.3, 0.7], window: 4}
rewards:
  weights: {correct: 1.0, format: 0.5, clarify: 1.0, length: 1.0, calibration: 0.2}
  length_limit: 4
""",
    "majority": """
envs:
  arithmetic: {weight: 1, levels: [1, 2]}
  modular: {weight: 1, levels: [1]}
judge: majority
rewards:
  weights: {correct: 1.0, format: 0.5, length: 1.0}
  length_limit: 4
""",
    "model_judge": """
envs:
  arithmetic: {weight: 1, levels: [1]}
judge: model
model_judge: {model: policy, think_tokens: 8, batch_size: 4}
rewards:
  weights: {correct: 1.0, format: 0.5}
""",
    "dialogue": """
envs:
  clarify: {weight: 2, levels: [1, 2], options: {unspecified_rate: 0.5}}
  arithmetic: {weight: 1, levels: [1]}
rewards:
  weights: {correct: 1.0, format: 0.1, clarify: 1.0}
dialogue: {enabled: true, max_turns: 1}
""",
    "selfplay": """
envs:
  arithmetic: {weight: 1, levels: [1, 2]}
rewards:
  weights: {correct: 1.0, format: 0.5}
selfplay:
  enabled: true
  mode: shared
  iterations: 2
  challenger_steps: 1
  solver_steps: 2
  prompts_per_step: 2
  proposals_per_prompt: 4
  attempts: 4
  keep_band: [0.0, 1.0]
""",
}
ANALYSED = {"program": True, "majority": False}
"""Cases analysed, and whether with the base/trained evaluations."""

# Keys whose values are wall times, dates or machine facts: not behaviour.
_VOLATILE = re.compile(
    r"(^|/)(seconds|time|timestamp|written|wall|elapsed|runtime|.*_seconds|.*_per_second|"
    r"train_runtime|total_flos|seconds_.*|.*_time|.*/seconds.*|.*_s)$"
)


def _plain(value, root: str):
    """``value`` as plain JSON: floats rounded, temporary paths replaced by ``RUNS``."""
    if isinstance(value, dict):
        return {
            str(k): _plain(v, root)
            for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))
            if not _VOLATILE.search(str(k))
        }
    if isinstance(value, list | tuple):
        return [_plain(v, root) for v in value]
    if hasattr(value, "tolist"):  # numpy arrays and scalars
        return _plain(value.tolist(), root)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return float(f"{value:.6g}")
    if isinstance(value, str):
        return _paths(value, root)
    return value


def _paths(text: str, root: str) -> str:
    """``text`` with the temporary folders (the runs', the tiny organism's) named, not spelt."""
    text = text.replace(root, "RUNS")
    return re.sub(r"/\S*?/models\d*/tiny(?:ch)?-[0-9a-f]+", "MODEL", text)


def _transcripts(run_dir: Path, root: str) -> list:
    import pyarrow.parquet as pq

    rows = []
    for path in sorted((run_dir / "transcripts").glob("*.parquet")):
        table = pq.read_table(path)
        rows.append({"file": path.name, "columns": table.column_names})
        rows.extend(table.to_pylist())
    return _plain(rows, root)


def _metrics(run_dir: Path, root: str) -> list:
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return _plain([json.loads(line) for line in lines], root)


def _report_text(path: Path, root: str) -> str:
    """The report's text: tags and embedded images left out."""
    html = path.read_text()
    html = re.sub(r"data:image/[a-z]+;base64,[A-Za-z0-9+/=]+", "IMG", html)
    html = re.sub(r"<style.*?</style>|<script.*?</script>", "", html, flags=re.S)
    text = re.sub(r"<[^>]+>", " ", html)
    text = re.sub(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", "DATE", text)
    return re.sub(r"\s+", " ", _paths(text, root)).strip()


@pytest.fixture(scope="module")
def runs(tiny, challenger_organism, tmp_path_factory):
    """Every case trained (and analysed where ``ANALYSED`` says) from the tiny organism."""
    from selfplay.analysis.analyze import analyze
    from selfplay.train import train

    root = tmp_path_factory.mktemp("golden")
    done = {}
    for name, extra in CASES.items():
        path = root / f"{name}.yaml"
        steps = "" if name == "selfplay" else "  max_steps: 3\n"
        model = challenger_organism if name == "selfplay" else tiny[1]
        path.write_text(COMMON.format(name=name, model=model, runs=root, max_steps=steps) + extra)
        run_dir = train(path)
        if name in ANALYSED:
            analyze(run_dir, samples=4, tasks_per_level=2, evaluate_models=ANALYSED[name])
        done[name] = run_dir
    return str(root), done


def _record(root: str, run_dir: Path, analysed: bool) -> dict:
    record = {
        "transcripts": _transcripts(run_dir, root),
        "metrics": _metrics(run_dir, root),
    }
    if analysed:
        summary = json.loads((run_dir / "analysis" / "summary.json").read_text())
        record["summary"] = _plain(summary, root)
        record["report"] = _report_text(run_dir / "analysis" / "report.html", root)
    return record


@pytest.mark.parametrize("case", sorted(CASES))
def test_behaviour_is_unchanged(runs, case):
    root, done = runs
    got = json.loads(json.dumps(_record(root, done[case], case in ANALYSED)))
    write = os.environ.get("SELFPLAY_GOLDEN_WRITE", "")
    if write:
        name = f"{case}.json" if write == "1" else f"{case}.{write}.json"
        (GOLDEN / name).write_text(json.dumps(got, indent=1, sort_keys=True) + "\n")
    differences = []
    for path in [GOLDEN / f"{case}.json", *sorted(GOLDEN.glob(f"{case}.*.json"))]:
        want = json.loads(path.read_text())
        where = _difference(got, want, "")
        if not where:
            return
        differences.append(f"{path.name}: {where}")
    pytest.fail(f"{case} matches no golden file: " + "; ".join(differences))


def _difference(got, want, where: str) -> str:
    """The first place (a dotted path, with both values) where ``got`` and ``want`` differ;
    "" if nowhere. Tokens, texts, verdicts, tags and counts must be equal. Floats agree within
    a relative 1e-2 (absolute 1e-6): CPUs differ in the last digits of the same float
    arithmetic (the golden files were written on an Intel CPU with AMX; on an AMD one with
    AVX512-BF16 a metric differs in the sixth figure, and after a few self-play updates a
    Brier score of 0.023 in the fourth), and a change of behaviour shows in the exact parts."""
    if isinstance(want, dict) and isinstance(got, dict):
        for key in sorted(set(want) | set(got)):
            found = _difference(got.get(key), want.get(key), f"{where}.{key}".lstrip("."))
            if found:
                return found
        return ""
    if isinstance(want, list) and isinstance(got, list) and len(want) == len(got):
        for k, (g, w) in enumerate(zip(got, want, strict=True)):
            found = _difference(g, w, f"{where}[{k}]")
            if found:
                return found
        return ""
    numbers = (int, float)
    if (
        isinstance(want, numbers)
        and isinstance(got, numbers)
        and not isinstance(want, bool)
        and not isinstance(got, bool)
        and math.isclose(got, want, rel_tol=1e-2, abs_tol=1e-6)
    ):
        return ""
    return "" if got == want else f"{where}: got {got!r:.200}, want {want!r:.200}"
