"""Third-party environments: a real package installed with pip is found by its entry point."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
TOY_ENV = Path(__file__).resolve().parent / "plugins" / "toy_env"


def run_python(code: str, *path: Path) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh interpreter with ``path`` (then the repository) on sys.path."""
    pythonpath = [str(p) for p in path] + [str(REPO)]
    if os.environ.get("PYTHONPATH"):
        pythonpath.append(os.environ["PYTHONPATH"])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(pythonpath)}
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The toy_env plug-in installed by pip into a fresh target folder (once per module)."""
    if importlib.util.find_spec("setuptools") is None:
        pytest.skip("setuptools is needed to build the toy plug-in without network access")
    root = tmp_path_factory.mktemp("plugin")
    # Build from a copy: setuptools writes build/ and *.egg-info next to the sources.
    source = shutil.copytree(
        TOY_ENV, root / "src", ignore=shutil.ignore_patterns("build", "*.egg-info")
    )
    target = root / "site"
    env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_NO_INPUT": "1"}
    pip = [sys.executable, "-m", "pip", "install", "--quiet", "--target", str(target)]
    # Nothing to fetch: no dependencies, and the build backend (setuptools) is already here.
    pip += ["--no-deps", "--no-build-isolation", "--no-index", str(source)]
    done = subprocess.run(
        pip,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert list(target.glob("toy_env-*.dist-info/entry_points.txt"))
    return target


def test_installed_plugin_is_registered_and_scores(installed: Path) -> None:
    done = run_python(
        """
        import toy_env
        from envs import ENVS, load_env, registered_envs

        envs = registered_envs()
        assert "parity" in envs and "parity" not in ENVS, sorted(envs)
        assert envs["parity"] is toy_env.Parity
        env = load_env("parity")
        task = env.task(seed=0, index=3, difficulty=2)
        assert task.env == "parity" and task.answer in ("even", "odd"), task
        assert env.score(env.target(task), task).score == 1.0
        wrong = "odd" if task.answer == "even" else "even"
        assert env.score(f"<answer>{wrong}</answer>", task).score == 0.0
        print(toy_env.__file__)
        """,
        installed,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert Path(done.stdout.strip()).parent == installed  # the pip-installed copy, not the source


@pytest.mark.parametrize(
    ("contract", "name", "checks"),
    [("test_reward_contract.py", "brevity", 6), ("test_judge_contract.py", "strict", 5)],
)
def test_installed_reward_and_judge_pass_the_contract(
    installed: Path, contract: str, name: str, checks: int
) -> None:
    """The plug-in's reward and judge are found by their entry points and pass the same
    contract tests the built-ins do, run as they are on a user's machine."""
    code = f"""
        import sys, pytest
        sys.exit(pytest.main(["-q", "-p", "no:cacheprovider", {str(REPO / "tests" / contract)!r},
                              "-k", {name!r}]))
        """
    done = run_python(code, installed)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"{checks} passed" in done.stdout, done.stdout


def test_plugin_is_invisible_when_not_installed() -> None:
    done = run_python("from envs import registered_envs; print(sorted(registered_envs()))")
    assert done.returncode == 0, done.stderr
    assert "parity" not in done.stdout


def fake_distribution(folder: Path, entry: str) -> Path:
    """A minimal installed distribution whose only content is one ``selfplay.envs`` entry point."""
    info = folder / "clashing_env-0.1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: clashing-env\nVersion: 0.1.0\n")
    (info / "entry_points.txt").write_text(f"[selfplay.envs]\n{entry}\n")
    return folder


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("arithmetic = toy_env:Parity", "'arithmetic' is registered twice"),
        ("coin = toy_env:Parity", "entry point 'coin' loads a class whose name is 'parity'"),
    ],
)
def test_bad_plugin_entry_point_is_a_clear_error(
    installed: Path, tmp_path: Path, entry: str, message: str
) -> None:
    fake = fake_distribution(tmp_path / "fake", entry)
    done = run_python(
        """
        from envs import load_env, registered_envs
        for call in (registered_envs, lambda: load_env("arithmetic")):
            try:
                call()
            except ValueError as err:
                print(err)
            else:
                raise SystemExit("no ValueError")
        """,
        fake,
        installed,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count(message) == 2, done.stdout


@pytest.mark.parametrize(
    ("group", "entry", "call", "message"),
    [
        (
            "selfplay.rewards",
            "correct = toy_env:brevity",
            "from rewards import registered_rewards as f",
            "reward 'correct' is registered twice",
        ),
        (
            "selfplay.judges",
            "model = toy_env:Strict",
            "from selfplay.judges import registered_judges as f",
            "judge 'model' is registered twice",
        ),
        (
            "selfplay.judges",
            "odd = toy_env:brevity",
            "from selfplay.judges import registered_judges as f",
            "is not a judge class",
        ),
    ],
)
def test_bad_reward_or_judge_entry_point_is_a_clear_error(
    installed: Path, tmp_path: Path, group: str, entry: str, call: str, message: str
) -> None:
    fake = fake_distribution(tmp_path / "fake", entry)
    points = fake / "clashing_env-0.1.0.dist-info" / "entry_points.txt"
    points.write_text(f"[{group}]\n{entry}\n")
    done = run_python(
        f"{call}\ntry:\n    f()\nexcept (ValueError, TypeError) as err:\n    print(err)",
        fake,
        installed,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert message in done.stdout, done.stdout
