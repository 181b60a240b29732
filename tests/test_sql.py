"""`selfplay transcripts RUN --sql`: DuckDB over a real tiny run's transcripts, metrics and
evals, for what the filters cannot say; bad queries and a missing DuckDB are one line, and no
query changes the run folder."""

import csv
import io
import json
import shutil
import sys
from pathlib import Path

import pytest
from tiny_runs import GENERATIONS, PROMPTS, STEPS, damaged_copy

from selfplay.cli import main


@pytest.fixture(scope="module")
def run(tiny_grpo_run):
    return tiny_grpo_run


def sql(run, query, *options):
    return main(["transcripts", str(run), "--sql", query, *options])


def json_rows(capsys, run, query, *options):
    code = sql(run, query, "--json", "--limit", "0", *options)
    captured = capsys.readouterr()
    assert code == 0, captured.err
    return [json.loads(line) for line in captured.out.splitlines()]


def metric_lines(run):
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_group_by_env_gives_what_pandas_gives(run, capsys):
    from selfplay.transcripts import read_transcripts

    got = json_rows(
        capsys,
        run,
        "SELECT env, count(*) AS n, avg(reward) AS mean_reward FROM transcripts "
        "GROUP BY env ORDER BY env",
    )
    frame = read_transcripts(run)
    want = frame.groupby("env")["reward"].agg(["count", "mean"])
    assert [r["env"] for r in got] == list(want.index) == ["arithmetic", "modular"]
    for row in got:
        assert row["n"] == want.loc[row["env"], "count"]
        assert row["mean_reward"] == pytest.approx(want.loc[row["env"], "mean"])
    assert sum(r["n"] for r in got) == STEPS * PROMPTS * GENERATIONS


def test_a_join_of_transcripts_and_metrics_on_step(run, capsys):
    # TRL logs a step's record after its update: transcript step s is metrics step s + 1.
    got = json_rows(
        capsys,
        run,
        "SELECT t.step, avg(t.reward) AS rows_mean, any_value(m.reward) AS logged, "
        'any_value(m."accuracy/arithmetic") AS accuracy '
        "FROM transcripts t JOIN metrics m ON m.step = t.step + 1 "
        "WHERE m.reward IS NOT NULL GROUP BY t.step ORDER BY t.step",
    )
    assert [r["step"] for r in got] == list(range(STEPS))
    for row in got:
        assert row["rows_mean"] == pytest.approx(row["logged"])
    logged = {r["step"]: r for r in metric_lines(run) if "reward" in r}
    assert [r["accuracy"] for r in got] == [logged[s + 1]["accuracy/arithmetic"] for s in range(3)]


def test_metrics_is_a_row_per_record_and_a_column_per_key(run, capsys):
    records = metric_lines(run)
    got = json_rows(capsys, run, 'SELECT step, reward, "probe/arithmetic/1/greedy" FROM metrics')
    assert len(got) == len(records)
    assert [r["step"] for r in got] == [r["step"] for r in records]
    assert [r["reward"] for r in got] == [r.get("reward") for r in records]
    assert [r["probe/arithmetic/1/greedy"] for r in got] == [
        r.get("probe/arithmetic/1/greedy") for r in records
    ]


def test_evals_hold_the_eval_rows(run, capsys):
    import pandas as pd

    meta = json.loads((run / "analysis" / "eval-base" / "eval.json").read_text())
    got = json_rows(
        capsys, run, "SELECT run, count(*) AS n, min(sample) AS s FROM evals GROUP BY run"
    )
    assert got == [{"run": meta["label"], "n": meta["rows"], "s": -1}]
    rows = pd.read_parquet(run / "analysis" / "eval-base" / "transcripts")
    assert meta["rows"] == len(rows) > 0


def test_schema_growth_across_steps_is_a_union_by_name(run, capsys, tmp_path):
    """A step file with a column the others lack: null in the other steps' rows."""
    import pyarrow.parquet as pq

    from selfplay.transcripts import TranscriptWriter

    copy = tmp_path / "run"
    shutil.copytree(run / "transcripts", copy / "transcripts")
    row = pq.read_table(copy / "transcripts" / "solver-step-000000.parquet").to_pylist()[0]
    TranscriptWriter(copy / "transcripts").write(STEPS, [{**row, "step": STEPS, "turns": "[]"}])
    got = json_rows(
        capsys,
        copy,
        "SELECT count(*) AS n, count(turns) AS with_turns, max(step) AS last FROM transcripts",
    )
    assert got == [{"n": STEPS * PROMPTS * GENERATIONS + 1, "with_turns": 1, "last": STEPS}]


def test_the_table_shows_the_columns_and_counts_the_rows(run, capsys):
    assert sql(run, "SELECT step, count(*) AS n FROM transcripts GROUP BY step ORDER BY step") == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].split() == ["step", "n"]
    assert [line.split() for line in lines[2:5]] == [
        [str(s), str(PROMPTS * GENERATIONS)] for s in range(3)
    ]
    assert lines[-1] == "3 rows"
    assert sql(run, "SELECT * FROM transcripts", "--limit", "2") == 0
    out = capsys.readouterr().out
    assert "completion" in out and "row 2" in out and "row 3" not in out  # too wide: a block a row
    assert (
        out.splitlines()[-1]
        == f"{STEPS * PROMPTS * GENERATIONS} rows (showing 2 of 24 rows; --limit 0 for all)"
    )


def test_csv_has_a_header_and_every_row(run, capsys):
    query = 'SELECT step, env, reward, completion FROM transcripts ORDER BY step, "group"'
    assert sql(run, query, "--csv", "--limit", "0") == 0
    captured = capsys.readouterr()
    rows = list(csv.reader(io.StringIO(captured.out)))
    assert rows[0] == ["step", "env", "reward", "completion"]
    assert len(rows) == 1 + STEPS * PROMPTS * GENERATIONS
    assert captured.err == ""
    assert sql(run, query, "--csv", "--limit", "5") == 0
    captured = capsys.readouterr()
    assert len(list(csv.reader(io.StringIO(captured.out)))) == 6
    assert "showing 5 of 24 rows" in captured.err


@pytest.mark.parametrize(
    "query,says",
    [
        ("SELEC env FROM transcripts", "Parser Error"),
        ("SELECT nope FROM transcripts", "Binder Error"),
        ("SELECT * FROM nowhere", "this run's views: transcripts, metrics, evals"),
        ("", "the query is empty"),
    ],
)
def test_a_bad_query_is_one_line_and_exit_2(run, capsys, query, says):
    assert sql(run, query) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert len(captured.err.strip().splitlines()) == 1
    assert captured.err.startswith("selfplay transcripts: error: --sql")
    assert says in captured.err


def test_sql_is_refused_with_the_filters_and_views(run, capsys):
    assert sql(run, "SELECT 1", "--env", "arithmetic", "--group") == 2
    err = capsys.readouterr().err
    assert "--sql cannot be combined with --env, --group" in err
    assert main(["transcripts", str(run), "--csv"]) == 2
    assert "--csv is for the rows of a --sql query" in capsys.readouterr().err


def files_of(folder: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()
    }


def test_no_query_changes_the_run_folder(run, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # nor the working directory (no spill folder left there)
    before = files_of(run)
    step0 = run / "transcripts" / "solver-step-000000.parquet"
    refused = [
        f"COPY (SELECT 1 AS x) TO '{step0}' (FORMAT parquet)",
        f"COPY transcripts TO '{run / 'transcripts' / 'solver-step-000009.parquet'}'",
        f"COPY metrics TO '{run / 'metrics.jsonl'}'",
        f"ATTACH '{run / 'db.duckdb'}' AS db",
        f"SELECT * FROM read_parquet('{step0}')",
        f"EXPORT DATABASE '{run / 'export'}'",
        "INSTALL httpfs",
        "SET enable_external_access = true",
    ]
    for query in refused:
        assert sql(run, query) == 2, query
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1, err
    # Only the in-memory database changes: the next query sees the view again.
    assert sql(run, "DROP VIEW transcripts; CREATE TABLE t AS SELECT 1 AS x; SELECT * FROM t") == 0
    assert capsys.readouterr().out.splitlines()[-1] == "1 row"
    assert json_rows(capsys, run, "SELECT count(*) AS n FROM transcripts") == [{"n": 24}]
    assert files_of(run) == before
    assert list(tmp_path.iterdir()) == []


def test_without_duckdb_sql_says_how_to_install_and_the_filters_still_work(
    run, capsys, monkeypatch
):
    monkeypatch.setitem(sys.modules, "duckdb", None)  # `import duckdb` raises ImportError
    assert sql(run, "SELECT 1") == 2
    captured = capsys.readouterr()
    assert captured.err.strip().splitlines() == [
        "selfplay transcripts: error: --sql needs DuckDB, which is not installed: "
        "pip install -e '.[sql]'"
    ]
    assert main(["transcripts", str(run), "--env", "modular", "--json", "--limit", "0"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert rows and {r["env"] for r in rows} == {"modular"}


def test_what_cannot_be_read_is_left_out_and_named(run, capsys, tmp_path):
    copy = damaged_copy(run, tmp_path)
    got = json_rows(capsys, copy, "SELECT count(*) AS n, max(step) AS last FROM transcripts")
    assert got == [{"n": (STEPS - 1) * PROMPTS * GENERATIONS, "last": STEPS - 2}]
    assert sql(copy, "SELECT max(step) AS last FROM metrics") == 0
    captured = capsys.readouterr()
    assert "truncated last line" in captured.err and "corrupt transcript file" in captured.err


def test_metrics_keys_of_mixed_types_are_kept_as_json_text(tmp_path):
    from selfplay.transcripts.sql import metrics_table

    lines = [
        {"step": 0, "loss": 1, "note": "warm"},
        {"step": 1, "loss": 0.5, "note": 3, "ok": True},
    ]
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    table = metrics_table(tmp_path)
    assert table.column_names == ["step", "loss", "note", "ok"]
    assert table.to_pydict() == {
        "step": [0, 1],
        "loss": [1.0, 0.5],
        "note": ['"warm"', "3"],
        "ok": [None, True],
    }
    assert metrics_table(tmp_path / "elsewhere") is None
