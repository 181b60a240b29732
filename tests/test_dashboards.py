"""``report_to``: every metric, probe and completions table reaches TensorBoard, trackio, W&B
(offline) and MLflow (a folder store), a resumed run continues the same dashboard run, and
trackio's own dashboard, opened in headless Chromium, shows a probe curve and a completion."""

import html
import json
import os
import socket
import struct
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml
from browser import page_body
from tiny_runs import run_config, write_run

from selfplay.config import load_config
from selfplay.config.run import RunConfig
from selfplay.dashboards import completions_table, report_to_names
from selfplay.errors import ConfigError
from selfplay.transcripts import schema

pytest.importorskip("trackio")
pytest.importorskip("wandb")
pytest.importorskip("mlflow")

STEPS = 8
DASHBOARDS = "report_to: [tensorboard, trackio, wandb, mlflow]"


def _config(model, runs: Path, steps: int = STEPS) -> str:
    return run_config(
        "dash", model, runs, steps, probe_every=4, checkpoint_every=2, more=DASHBOARDS
    )


def _env(tmp: Path) -> dict[str, str]:
    """Each dashboard kept inside ``tmp``, offline, quiet."""
    return {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "TRACKIO_DIR": str(tmp / "trackio"),
        "TRACKIO_PROJECT": "selfplay-test",
        "WANDB_MODE": "offline",
        "WANDB_SILENT": "true",
        "WANDB_CONFIG_DIR": str(tmp / "wandb-config"),
        "WANDB_CACHE_DIR": str(tmp / "wandb-cache"),
        "WANDB_DATA_DIR": str(tmp / "wandb-data"),
        "MLFLOW_TRACKING_URI": (tmp / "mlruns").as_uri(),
        "MLFLOW_ALLOW_FILE_STORE": "true",  # MLflow's folder store, kept for offline use
    }


def _train(path: Path, tmp: Path, *more: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "selfplay.cli", "train", str(path), *more],
        cwd=tmp,
        env=_env(tmp),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


@pytest.fixture(scope="module")
def resumed(tiny, tmp_path_factory):
    """A run reporting to all three dashboards, killed after step 5 and resumed to the end:
    ``(tmp, run_dir, dashboards.json as the killed run left it)``."""
    tmp = tmp_path_factory.mktemp("dashboards")
    path = tmp / "dash.yaml"
    path.write_text(_config(tiny[1], tmp / "runs"))
    run_dir = tmp / "runs" / "dash"
    proc = _train(path, tmp)
    deadline = time.monotonic() + 240
    # After step 5's transcript: checkpoint 4 is committed, steps 4 and 5 are sent again.
    while not (run_dir / "transcripts" / "solver-step-000005.parquet").exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"the run ended before step 5:\n{proc.stdout.read()}")
        time.sleep(0.01)
    proc.kill()
    proc.wait(timeout=30)
    identity = json.loads((run_dir / "dashboards.json").read_text())
    out, _ = _train(path, tmp, "--resume").communicate(timeout=300)
    assert (run_dir / "summary.json").exists(), out
    return tmp, run_dir, identity


def _records(run_dir: Path) -> list[dict]:
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def _numbers(record: dict) -> dict[str, float]:
    return {
        k: v
        for k, v in record.items()
        if k != "step" and isinstance(v, (int, float)) and not isinstance(v, bool)
    }


def test_report_to_names_what_it_accepts():
    assert report_to_names("tensorboard") == ["tensorboard"]
    assert report_to_names(["trackio", "wandb"]) == ["trackio", "wandb"]
    assert report_to_names("none") == [] and report_to_names([]) == []
    with pytest.raises(ValueError, match="'tensorbaord' is not a dashboard"):
        report_to_names("tensorbaord")
    with pytest.raises(ValueError, match="twice"):
        report_to_names(["wandb", "wandb"])


def test_a_bad_report_to_is_one_line_and_exit_2(tmp_path, tiny):
    path = tmp_path / "bad.yaml"
    path.write_text(_config(tiny[1], tmp_path / "runs", steps=2))
    config = yaml.safe_load(path.read_text())
    for value, message in (
        ("comet", "report_to: 'comet' is not a dashboard"),
        (3, "key 'report_to': expected"),
    ):
        path.write_text(yaml.safe_dump({**config, "report_to": value}))
        with pytest.raises(ConfigError, match=message):
            load_config(path, RunConfig)
        done = subprocess.run(
            [sys.executable, "-m", "selfplay.cli", "train", str(path)],
            capture_output=True,
            text=True,
            cwd=tmp_path,
        )
        assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1, done.stderr
        assert not (tmp_path / "runs").exists()
    path.write_text(yaml.safe_dump(config))
    done = subprocess.run(
        [sys.executable, "-m", "selfplay.cli", "train", str(path), "--report-to", "trackio,tb"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert done.returncode == 2 and "--report-to: 'tb' is not a dashboard" in done.stderr
    assert not (tmp_path / "runs").exists()
    path.write_text(yaml.safe_dump({**config, "grpo": {**config["grpo"], "report_to": "wandb"}}))
    done = subprocess.run(
        [sys.executable, "-m", "selfplay.cli", "train", str(path)], capture_output=True, text=True
    )
    assert done.returncode == 2 and "top-level 'report_to'" in done.stderr, done.stderr


def test_completions_table_has_trl_columns_then_ours():
    row = {
        schema.STEP: 3,
        schema.PROMPT: "What is 2 + 3?",
        schema.COMPLETION: "<answer>5</answer>",
        schema.reward_column("correct"): 1.0,
        schema.reward_column("format"): 0.5,
        schema.ADVANTAGE: 0.7,
        schema.ENV: "arithmetic",
        schema.DIFFICULTY: 1,
        schema.VERDICT_SCORE: 1.0,
        schema.VERDICT_PARSED: "5",
        schema.REWARD: 1.05,
        schema.COMPLETION_TOKENS: 9,
        schema.SELF_CORRECTION_LEXICAL: False,
    }
    table = completions_table([row, {**row, schema.ADVANTAGE: -0.7}], ["correct", "format"])
    assert list(table)[:6] == ["step", "prompt", "completion", "correct", "format", "advantage"]
    assert table["advantage"] == [0.7, -0.7] and table["level"] == [1, 1]
    assert table["verdict"] == [1.0, 1.0] and table[schema.SELF_CORRECTION_LEXICAL] == [False] * 2
    assert schema.ASKED not in table  # a tag no row has is left out


def _trackio(tmp: Path, sql: str) -> list[dict]:
    done = subprocess.run(
        [sys.executable, "-m", "trackio.cli", "query", "project"]
        + ["--project", "selfplay-test", "--sql", sql, "--json"],
        capture_output=True,
        text=True,
        env=_env(tmp),
        check=True,
    )
    found = json.loads(done.stdout)
    return found["rows"] if isinstance(found, dict) else found


def _trackio_metrics(tmp: Path) -> tuple[set[str], dict[int, dict]]:
    """(the trackio runs' names, step -> every value sent at that step)."""
    rows = _trackio(tmp, "SELECT run_name, step, metrics FROM metrics")
    sent: dict[int, dict] = {}
    for r in rows:
        values = json.loads(r["metrics"]) if isinstance(r["metrics"], str) else r["metrics"]
        sent.setdefault(r["step"], {}).update(values)
    return {r["run_name"] for r in rows}, sent


def test_trackio_has_every_metric_at_its_step_in_one_run(resumed):
    tmp, run_dir, identity = resumed
    assert json.loads((run_dir / "dashboards.json").read_text()) == identity
    names, sent = _trackio_metrics(tmp)
    assert names == {identity["trackio"]["name"]} == {"dash"}
    records = _records(run_dir)
    assert {r["step"] for r in records} == set(range(STEPS + 1))
    for record in records:
        for key, value in _numbers(record).items():
            assert sent[record["step"]].get(key) == pytest.approx(value), (record["step"], key)
    assert any(k.startswith("probe/") for k in sent[STEPS])  # the final probe
    assert any(k.startswith("behaviour/") for k in sent[STEPS])  # ours beside TRL's


def test_a_selfplay_run_reports_both_phases(challenger_organism, tmp_path):
    path = write_run(tmp_path, challenger_organism, name="spdash", extra="report_to: trackio\n")
    done = subprocess.run(
        [sys.executable, "-m", "selfplay.cli", "train", str(path)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=_env(tmp_path),
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    names, sent = _trackio_metrics(tmp_path)
    assert names == {"spdash"}
    records = _records(tmp_path / "spdash")
    assert any("challenger/reward" in r for r in records)  # the Challenger's phase
    assert any("accuracy/arithmetic" in r for r in records)  # the Solver's
    for record in records:
        for key, value in _numbers(record).items():
            assert sent[record["step"]].get(key) == pytest.approx(value), (record["step"], key)
    assert not (tmp_path / "spdash" / "tensorboard").exists()  # trackio alone, as asked


def _wandb_records(path: Path):
    """The records of a W&B ``.wandb`` file (a LevelDB-style log of protobuf records, after a
    7-byte header): W&B ships no reader, so the test has one."""
    from wandb.proto import wandb_internal_pb2

    data, block, out = path.read_bytes(), 32768, []
    pos, pending = 7, b""
    while pos + 7 <= len(data):
        if block - pos % block < 7:  # a block's tail too short for a header is padding
            pos += block - pos % block
            continue
        _, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        pending += data[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):  # a whole record, or the last piece of one
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            out.append(record)
            pending = b""
        elif kind == 0:
            break
    return out


def test_wandb_offline_has_every_metric_and_the_tables_in_one_run(resumed):
    tmp, run_dir, identity = resumed
    files = sorted((run_dir / "wandb").glob("offline-run-*/run-*.wandb"))
    assert len(files) == 2  # the killed run and the resumed one, one W&B run id
    assert {f.stem for f in files} == {f"run-{identity['wandb']['id']}"}
    sent: dict[int, dict] = {}
    for f in files:
        for record in _wandb_records(f):
            if record.WhichOneof("record_type") == "history":
                items = {
                    i.key or "/".join(i.nested_key): json.loads(i.value_json)
                    for i in record.history.item
                }
                if "train/global_step" in items:
                    sent.setdefault(items["train/global_step"], {}).update(items)
    for record in _records(run_dir):
        for key, value in _numbers(record).items():
            assert sent[record["step"]].get(key) == pytest.approx(value), (record["step"], key)
    tables = sorted(run_dir.glob("wandb/offline-run-*/files/media/table/completions_*.table.json"))
    assert len(tables) >= STEPS
    table = json.loads(tables[0].read_text())
    assert table["columns"][:3] == ["step", "prompt", "completion"]
    assert {"correct", "format", "advantage", "env", "level", "verdict"} <= set(table["columns"])


def test_mlflow_has_every_metric_and_the_tables_in_one_run(resumed, monkeypatch):
    import mlflow

    tmp, run_dir, identity = resumed
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    client = mlflow.MlflowClient(tracking_uri=(tmp / "mlruns").as_uri())
    experiment = client.get_experiment_by_name("selfplay")
    runs = client.search_runs([experiment.experiment_id])
    assert [r.info.run_id for r in runs] == [identity["mlflow"]["run_id"]]
    run_id = runs[0].info.run_id
    assert runs[0].info.run_name == "dash" and runs[0].info.status == "FINISHED"
    history: dict[str, dict[int, set]] = {}
    for record in _records(run_dir):
        for key, value in _numbers(record).items():
            if key not in history:
                history[key] = {}
                for m in client.get_metric_history(run_id, key):
                    history[key].setdefault(m.step, set()).add(m.value)
            assert any(v == pytest.approx(value) for v in history[key].get(record["step"], ())), (
                record["step"],
                key,
            )
    tables = [f.path for f in client.list_artifacts(run_id, "completions")]
    assert len(tables) >= STEPS
    table = json.loads(Path(client.download_artifacts(run_id, tables[0], str(tmp))).read_text())
    assert table["columns"][:3] == ["step", "prompt", "completion"]
    assert {"correct", "advantage", "env", "level", "verdict"} <= set(table["columns"])


def test_an_mlflow_store_that_cannot_open_is_refused_before_the_run(tiny, tmp_path):
    path = tmp_path / "ml.yaml"
    path.write_text(_config(tiny[1], tmp_path / "runs", steps=2).replace(DASHBOARDS, ""))
    env = {**_env(tmp_path), "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path}/mlflow.db"}
    done = subprocess.run(
        [sys.executable, "-m", "selfplay.cli", "train", str(path), "--report-to", "mlflow"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
    )
    assert done.returncode == 2, done.stderr
    assert "MLflow cannot open its tracking store" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert not (tmp_path / "runs").exists()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_trackio_dashboard_shows_a_probe_curve_and_a_completion(resumed, tmp_path):
    tmp, run_dir, _ = resumed
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "trackio.cli", "show", "--project", "selfplay-test"],
        env={**_env(tmp), "GRADIO_SERVER_PORT": str(port), "BROWSER": "true"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(url, timeout=2)
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"trackio show did not start:\n{server.communicate()[0]}")
                time.sleep(0.5)
        page = f"{url}/?project=selfplay-test"
        _, metrics = page_body(page, tmp_path / "profile")
        assert "probe" in metrics and "greedy_mean" in metrics
        _, media = page_body(f"{url}/media?project=selfplay-test", tmp_path / "profile2")
        import pyarrow.parquet as pq

        last = pq.read_table(sorted((run_dir / "transcripts").glob("solver-step-*.parquet"))[-1])
        completions = [c for c in last.column(schema.COMPLETION).to_pylist() if c.strip()]
        assert "completions" in media
        assert any(html.escape(c.strip(), quote=False)[:20] in media for c in completions)
    finally:
        server.terminate()
        server.wait(timeout=30)
