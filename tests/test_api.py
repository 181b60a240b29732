"""The public API: the package docstring's example runs, and every name it exports resolves."""

import doctest
from pathlib import Path

import selfplay

ROOT = Path(__file__).parent.parent


def test_every_exported_name_resolves():
    for name in selfplay.__all__:
        assert getattr(selfplay, name) is not None, name
    assert set(selfplay.__all__) <= set(dir(selfplay))


def test_an_unknown_name_is_an_attribute_error():
    import pytest

    with pytest.raises(AttributeError, match="no attribute 'trian'"):
        selfplay.trian  # noqa: B018


def test_the_docstring_example_runs(tiny, tmp_path, monkeypatch):
    from rich.console import Console

    monkeypatch.chdir(ROOT)  # the example names configs/quickstart.yaml
    small = tmp_path / "small.yaml"
    small.write_text(
        f"""
name: small
model: {tiny[1]}
runs_dir: {tmp_path}
envs: {{arithmetic: {{levels: [1, 2]}}}}
probe: {{every: 0, tasks_per_level: 1, max_new_tokens: 8}}
grpo: {{max_steps: 3, num_generations: 4, per_device_train_batch_size: 8,
        max_completion_length: 16}}
"""
    )
    globs = {"small_config": small, "quiet": Console(quiet=True)}
    test = doctest.DocTestParser().get_doctest(selfplay.__doc__, globs, "selfplay", None, 0)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    runner.run(test)
    assert runner.summarize(verbose=False).failed == 0
    assert runner.summarize(verbose=False).attempted >= 8
