"""A corrupt file in a run folder costs only itself: named, skipped with a warning, counted.

The run is synthetic and small: five steps of four solver completions written with the real
``TranscriptWriter``, a ``metrics.jsonl`` with the judge keys (so the hacking watch reads the
transcripts too) and a ``config.json`` stored as ``train`` stores it. One transcript file is
then damaged the ways a disk, a copy or a kill damage files: emptied, cut in half, random
bytes written over its middle (its footer, in a file this small), or random bytes over the
middle of its ``completion`` column only, which a reader finds only when it reads that column.
"""

import json
import random
import re

import pyarrow.parquet as pq
import pytest

from selfplay.analysis.analyze import AnalysisError, analyze
from selfplay.cli import main
from selfplay.config import from_dict, to_dict
from selfplay.config.run import RunConfig
from selfplay.transcripts import TranscriptWriter, chain, query
from selfplay.transcripts.reading import metric_records

STEPS = range(1, 6)
PER_STEP = 4
BAD_STEP = 3
KINDS = ("zero-byte", "truncated", "garbled", "garbled-column")


def transcript_row(step: int, i: int) -> dict:
    correct = i % 2 == 0
    return {
        "run": "synthetic",
        "step": step,
        "role": "solver",
        "group": 0,
        "task_id": "arithmetic/0/1/7",
        "env": "arithmetic",
        "difficulty": 1,
        "prompt": "Compute 3+4.",
        "answer": "7",
        "completion": f"step {step} row {i}: 3+4=8, wait, 3+4=7 <answer>{7 if correct else 8}"
        f"</answer> confidence {0.5 + i / 10}",
        "reward": float(correct),
        "advantage": 0.0,
        "verdict_kind": "answer",
        "verdict_parsed": "7" if correct else "8",
        "verdict_score": float(correct),
        "verdict_reason": "correct" if correct else "wrong",
        "truth_score": float(correct and i != 2),
        "confidence": 0.5 + i / 10,
        "self_correction_lexical": True,
        "self_correction_verified": correct,
        "clarify_outcome": "true_negative",
    }


def metric_record(step: int) -> dict:
    return {
        "step": step,
        "reward": 0.5,
        "accuracy/arithmetic": 0.5,
        "behaviour/self_correction_verified_rate": 0.5,
        "behaviour/self_correction_lexical_rate": 1.0,
        "judge/reward": 0.5,
        "judge/truth": 0.25,
    }


@pytest.fixture
def run(tmp_path):
    folder = tmp_path / "run"
    folder.mkdir()
    config = from_dict(RunConfig, {"model": "organism", "envs": {"arithmetic": {"weight": 1}}})
    (folder / "config.json").write_text(json.dumps(to_dict(config), indent=2))
    lines = [json.dumps(metric_record(step)) + "\n" for step in STEPS]
    (folder / "metrics.jsonl").write_text("".join(lines))
    writer = TranscriptWriter(folder / "transcripts")
    for step in STEPS:
        writer.write(step, [transcript_row(step, i) for i in range(PER_STEP)])
    return folder


def damage(run, kind: str):
    """Damage the transcript file of ``BAD_STEP`` the way ``kind`` says; return its path."""
    path = TranscriptWriter(run / "transcripts").path(BAD_STEP)
    data = bytearray(path.read_bytes())
    noise = random.Random(0)
    if kind == "zero-byte":
        data = bytearray()
    elif kind == "truncated":
        data = data[: len(data) // 2]
    elif kind == "garbled":
        middle = len(data) // 2
        data[middle - 64 : middle + 64] = noise.randbytes(128)
    else:  # the middle of the completion column's pages: the footer still reads
        meta = pq.read_metadata(path)
        at = meta.schema.to_arrow_schema().get_field_index("completion")
        chunk = meta.row_group(0).column(at)
        start = chunk.dictionary_page_offset or chunk.data_page_offset
        lo, hi = start + chunk.total_compressed_size // 4, start + chunk.total_compressed_size // 2
        data[lo:hi] = noise.randbytes(hi - lo)
    path.write_bytes(bytes(data))
    if kind == "garbled-column":  # what makes this case: only reading completion fails
        assert pq.read_table(path, columns=["step", "reward"]).num_rows == PER_STEP
        with pytest.raises(Exception):  # noqa: B017, PT011 (pyarrow's error, whatever it is)
            pq.read_table(path, columns=["completion"])
    else:
        with pytest.raises(Exception):  # noqa: B017, PT011
            pq.read_metadata(path)
    return path


def good_steps():
    return [s for s in STEPS if s != BAD_STEP]


def warning_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if "warning" in line]


# -- selfplay transcripts -------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_query_skips_the_corrupt_file_with_a_warning_naming_it(run, kind):
    bad = damage(run, kind)
    with pytest.warns(UserWarning) as caught:
        rows = query(run)
    assert sorted(set(rows["step"])) == good_steps()
    assert len(rows) == PER_STEP * len(good_steps())
    (message,) = [str(w.message) for w in caught]
    assert message.startswith(f"skipped 1 corrupt transcript file: {bad} (")


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(
    "view", [[], ["--group"], ["--diff", "arithmetic/0/1/7"], ["--chain", "arithmetic/0/1/7"]]
)
def test_cli_shows_the_good_rows_and_one_warning_line(run, kind, view, capsys):
    bad = damage(run, kind)
    assert main(["transcripts", str(run), "--limit", "0", *view]) == 0
    out, err = capsys.readouterr()
    (line,) = err.splitlines()
    assert line.startswith(
        f"selfplay transcripts: warning: skipped 1 corrupt transcript file: {bad} ("
    )
    for step in good_steps():
        assert f"step {step} row 1" in out
    assert f"step {BAD_STEP} row" not in out
    if not view:
        assert out.splitlines()[-1] == "16 of 16 rows matched"


@pytest.mark.parametrize("kind", KINDS)
def test_cli_json_stays_json_lines(run, kind, capsys):
    damage(run, kind)
    assert main(["transcripts", str(run), "--limit", "0", "--json"]) == 0
    out, err = capsys.readouterr()
    rows = [json.loads(line) for line in out.splitlines()]
    assert sorted({r["step"] for r in rows}) == good_steps() and len(rows) == 16
    assert len(warning_lines(err)) == 1


def test_chain_skips_the_corrupt_file(run):
    damage(run, "garbled-column")
    with pytest.warns(UserWarning, match="skipped 1 corrupt transcript file"):
        links = chain(run, "arithmetic/0/1/7")
    assert sorted({r["step"] for r in links["solver"]}) == good_steps()


def test_every_file_corrupt_is_a_warning_and_an_error(run, capsys):
    for path in (run / "transcripts").iterdir():
        path.write_bytes(b"")
    assert main(["transcripts", str(run)]) == 2
    warning, error = capsys.readouterr().err.splitlines()
    assert warning.startswith("selfplay transcripts: warning: skipped 5 corrupt transcript files")
    assert error == (
        f"selfplay transcripts: error: no readable transcripts under {run / 'transcripts'} "
        "(all 5 files corrupt)"
    )


# -- selfplay analyze -----------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_analyze_skips_the_corrupt_file_and_says_so(run, kind, capsys):
    bad = damage(run, kind)
    assert main(["analyze", str(run), "--no-eval"]) == 0
    out = capsys.readouterr().out
    (line,) = warning_lines(out)
    assert line.startswith(f"warning: skipped 1 corrupt transcript file: {bad} (")
    summary = json.loads((run / "analysis" / "summary.json").read_text())
    (skipped,) = summary["skipped"]
    assert skipped["file"] == str(bad) and skipped["error"]
    assert summary["hacking"]["examples_note"] is None  # it read the transcripts
    assert BAD_STEP not in {r["step"] for r in summary["hacking"]["examples"]}
    assert str(bad) in (run / "analysis" / "report.html").read_text()


def test_analyze_names_a_corrupt_config_json(run, capsys):
    (run / "config.json").write_text('{"model": "organism", "envs": {')
    with pytest.raises(AnalysisError, match=f"^{re.escape(str(run / 'config.json'))}: not JSON: "):
        analyze(run, evaluate_models=False)
    assert main(["analyze", str(run), "--no-eval"]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith(f"selfplay analyze: error: {run / 'config.json'}: not JSON: ")


def test_analyze_names_a_corrupt_config_json_of_a_control_run(run, tmp_path, capsys):
    control = tmp_path / "control"
    control.mkdir()
    (control / "metrics.jsonl").write_text((run / "metrics.jsonl").read_text())
    (control / "config.json").write_bytes(b"\x00" * 16)
    argv = ["analyze", str(run), "--no-eval", "--control", str(control)]
    assert main(argv) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith(f"selfplay analyze: error: {control / 'config.json'}: not JSON: ")


def test_a_truncated_last_metrics_line_is_skipped_with_a_warning(run, capsys):
    metrics = run / "metrics.jsonl"
    with metrics.open("a") as f:
        f.write(json.dumps(metric_record(6))[:30])  # killed mid-write
    records = metric_records(run)
    assert [r["step"] for r in records] == list(STEPS)
    assert main(["analyze", str(run), "--no-eval"]) == 0
    (line,) = warning_lines(capsys.readouterr().out)
    assert line.startswith(f"warning: skipped the truncated last line of {metrics} (line 6: ")
    summary = json.loads((run / "analysis" / "summary.json").read_text())
    assert summary["skipped"] == [
        {"file": str(metrics), "line": 6, "error": summary["skipped"][0]["error"]}
    ]


@pytest.mark.parametrize(
    "damaged,message",
    [
        (b'{"step": 1}\n{"step": 2\n{"step": 3}\n', ":2: not JSON: "),
        (b'{"step": 1}\n\xff\xfe{"step": 2}\n{"step": 3}\n', ":2: not JSON: "),
        (b'{"step": 1}\n[1, 2]\n{"step": 3}\n', ":2: not a record with a step"),
    ],
)
def test_a_corrupt_metrics_file_is_one_line_naming_it(run, capsys, damaged, message):
    (run / "metrics.jsonl").write_bytes(damaged)
    assert main(["analyze", str(run), "--no-eval"]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith(f"selfplay analyze: error: {run / 'metrics.jsonl'}{message}")


def test_the_challenger_summary_skips_the_corrupt_file(run):
    from selfplay.analysis.play import selfplay_summary
    from selfplay.transcripts import Skipped

    writer = TranscriptWriter(run / "transcripts")
    for step in STEPS:
        proposals = [
            {
                "step": step,
                "role": "challenger",
                "group": 0,
                "env": "arithmetic",
                "task_id": f"arithmetic/proposed/1/{step}{i}",
                "difficulty": 1,
                "completion": f"propose {step}+{i}",
                "proposal_status": "ok",
                "proposal_detail": None,
                "proposed_task": f"{step}+{i}",
                "answer": str(step + i),
                "solve_rate": 0.5,
                "reward": 0.25 * i,
            }
            for i in range(PER_STEP)
        ]
        writer.write(step, proposals, role="challenger")
    bad = writer.path(BAD_STEP, "challenger")
    bad.write_bytes(bad.read_bytes()[:100])
    skipped = Skipped()
    block = selfplay_summary(run, metric_records(run), skipped)
    assert block["proposals"] == PER_STEP * len(good_steps())
    assert block["steps"] == {"first": 1, "last": 5}
    assert list(skipped.files) == [str(bad)]


@pytest.mark.parametrize("kind", ["zero-byte", "truncated", "garbled"])
def test_read_transcripts_names_the_corrupt_file(run, kind):
    # Eval folders are read whole (a missing file would change pass@k): an error naming it.
    from selfplay.errors import CorruptTranscript
    from selfplay.transcripts import read_transcripts

    path = damage(run, kind)
    with pytest.raises(CorruptTranscript, match=re.escape(str(path))):
        read_transcripts(run)


def test_compare_names_a_corrupt_eval_file(tmp_path, capsys):
    # An eval folder given to a command (--base of eval, compare) is read whole: one line.
    from selfplay.errors import CorruptTranscript
    from selfplay.evaluate import EVAL_FILE, read_eval

    folder = tmp_path / "eval"
    (folder / "transcripts").mkdir(parents=True)
    (folder / EVAL_FILE).write_text("{")
    with pytest.raises(ValueError, match=re.escape(str(folder / EVAL_FILE))):
        read_eval(folder)
    (folder / EVAL_FILE).write_text("{}")
    (folder / "transcripts" / "eval-step-000000.parquet").write_bytes(b"")
    with pytest.raises(CorruptTranscript, match="eval-step-000000.parquet"):
        read_eval(folder)
