"""The base-model organism: tokenizer, corpus recipe, and a real (tiny) pretraining run."""

import json
import re

import pytest

from envs import parse_completion
from selfplay.config import from_dict, load_config
from selfplay.organism.corpus import CORRECTION_MARKER, CorpusConfig, build_envs, documents
from selfplay.organism.pretrain import RESULT_FILE, OrganismConfig, organism_dir, pretrain
from selfplay.organism.tokenizer import build_tokenizer

MIX = {
    "arithmetic": {"levels": [1, 2, 3]},
    "countdown": {"levels": [1, 2]},
    "modular": {"levels": [1, 2]},
    "clarify": {"levels": [1, 2], "options": {"unspecified_rate": 0.5}},
}


def corpus(n: int, **rates) -> list[tuple]:
    config = from_dict(CorpusConfig, {"envs": MIX, **rates})
    stream = documents(config, build_envs(config))
    return [next(stream) for _ in range(n)]


def test_tokenizer_round_trips_through_auto_classes(tmp_path):
    from transformers import AutoTokenizer

    tokenizer = build_tokenizer()
    text = "<think>12+9=21\nwait, ok</think><answer>21</answer><ask>How many?</ask>"
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    assert len(ids) == len(text) - sum(len(t) - 1 for t in re.findall(r"</?\w+>", text))
    # TRL decodes completions with skip_special_tokens=True: the tags must survive it.
    assert tokenizer.decode(ids, skip_special_tokens=True) == text
    tokenizer.save_pretrained(tmp_path)
    loaded = AutoTokenizer.from_pretrained(tmp_path)
    assert loaded(text, add_special_tokens=False)["input_ids"] == ids
    prompt = loaded.apply_chat_template(
        [{"role": "user", "content": "Compute 1+2."}], add_generation_prompt=True, tokenize=False
    )
    assert prompt == "<bos><|user|>Compute 1+2.<|assistant|>"


def test_corpus_is_deterministic():
    assert corpus(50) == corpus(50)


def test_rates_of_zero_leave_no_trace():
    docs = corpus(3000, self_correction_rate=0.0, clarify_rate=0.0)
    assert sum(not task.specified for task, _ in docs) > 100, (
        "the mix must hold underspecified tasks"
    )
    for _task, text in docs:
        assert CORRECTION_MARKER not in text.lower(), text
        assert "<ask>" not in text and "</ask>" not in text, text
        assert "unknown" not in text, text  # no noticing of the missing quantity either
        assert parse_completion(text).kind == "answer"


def test_rates_set_the_share_of_behaviours():
    docs = corpus(3000, self_correction_rate=0.2, clarify_rate=0.5)
    specified = [text for task, text in docs if task.specified]
    underspecified = [text for task, text in docs if not task.specified]
    corrected = [t for t in specified if f"{CORRECTION_MARKER}, " in t]
    asked = [t for t in underspecified if parse_completion(t).kind == "ask"]
    assert 0.12 < len(corrected) / len(specified) < 0.25
    assert 0.4 < len(asked) / len(underspecified) < 0.6
    # A corrected step is wrong first, then restated right, and the final answer is still right.
    for text in corrected[:200]:
        steps = parse_completion(text).reasoning.split("\n")
        i = next(k for k, s in enumerate(steps) if s.startswith(CORRECTION_MARKER))
        wrong, right = steps[i - 1], steps[i][len(CORRECTION_MARKER) + 2 :]
        assert wrong.rsplit("=", 1)[0] == right.rsplit("=", 1)[0]
        assert wrong.rsplit("=", 1)[1] != right.rsplit("=", 1)[1]


def test_corrected_traces_can_end_wrong_and_only_they():
    """``self_correction_ends_wrong``: every corrected trace ends with an answer the
    environment scores wrong; every other trace is as the plain recipe writes it."""
    plain = corpus(2000, self_correction_rate=0.2, clarify_rate=0.5)
    wrong = corpus(
        2000, self_correction_rate=0.2, clarify_rate=0.5, self_correction_ends_wrong=True
    )
    envs = build_envs(from_dict(CorpusConfig, {"envs": MIX}))
    corrected = 0
    for (task, a), (same, b) in zip(plain, wrong, strict=True):
        assert task == same  # the tasks do not move: only corrected traces draw more
        if not task.specified:
            continue
        if f"{CORRECTION_MARKER}, " in b:
            corrected += 1
            assert envs[task.env].score(b, task).score < 1.0, b
            assert envs[task.env].score(a, task).score == 1.0, a
            assert a.split("<answer>")[0] == b.split("<answer>")[0]  # the same reasoning
        else:
            assert a == b
    assert corrected > 150


def test_confidence_rate_zero_leaves_no_confidence():
    docs = corpus(3000, self_correction_rate=0.2, clarify_rate=0.5)
    assert all("confidence" not in text for _, text in docs)


def test_confidence_rate_one_puts_one_after_every_answer():
    docs = corpus(3000, self_correction_rate=0.2, clarify_rate=0.5, confidence_rate=1.0)
    stated: dict[tuple, list[float]] = {}
    for task, text in docs:
        parsed = parse_completion(text)
        if parsed.kind == "ask":
            assert "confidence" not in text
            continue
        assert parsed.kind == "answer" and parsed.trailing == "", text
        assert parsed.confidence is not None, text
        key = ("guess",) if not task.specified else (task.env, task.difficulty)
        stated.setdefault(key, []).append(parsed.confidence)
    # Guesses at underspecified tasks (always wrong) are unsure; solutions sure, less so
    # the higher their level in the recipe: 0.9, 0.6, 0.3 (arithmetic 1, 2, 3), give or take 0.1.
    assert set(stated[("guess",)]) == {0.0, 0.1, 0.2}
    levels = {("arithmetic", 1): 0.9, ("arithmetic", 2): 0.6, ("arithmetic", 3): 0.3}
    for (env, level), want in levels.items():
        values = stated[(env, level)]
        assert set(values) == {round(want + d, 1) for d in (-0.1, 0.0, 0.1)}
        assert abs(sum(values) / len(values) - want) < 0.02


def test_confidence_is_the_last_draw_of_a_document():
    """Each document's confidence is drawn after everything else: without it the stream is
    the one a recipe without confidence_rate writes (so old recipes keep their corpus)."""
    plain = corpus(600, self_correction_rate=0.2, clarify_rate=0.5)
    sure = corpus(600, self_correction_rate=0.2, clarify_rate=0.5, confidence_rate=0.5)
    stripped = [(task, re.sub(r"<confidence>[^<]*</confidence>$", "", text)) for task, text in sure]
    assert stripped == plain
    share = sum("<confidence>" in text for _, text in sure) / len(sure)
    assert 0.4 < share < 0.6


def test_pretraining_trains_saves_and_reloads(tiny):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from selfplay.organism.pretrain import build_model

    _, out = tiny
    result = json.loads((out / RESULT_FILE).read_text())
    assert {(r["env"], r["level"], r["split"]) for r in result["eval"]} == {
        ("arithmetic", 1, "train"),
        ("arithmetic", 2, "heldout"),
        ("modular", 1, "train"),
    }
    assert result["final_loss"] < 3.0, "the loss must fall well below uniform (ln 108 = 4.7)"
    model = AutoModelForCausalLM.from_pretrained(out)
    tokenizer = AutoTokenizer.from_pretrained(out)
    torch.manual_seed(3)
    fresh = build_model(load_config(tiny[0], OrganismConfig).model, tokenizer)
    changed = [
        n
        for n, p in model.named_parameters()
        if not torch.equal(p, dict(fresh.named_parameters())[n])
    ]
    assert len(changed) == len(list(model.parameters())), "every parameter must have trained"
    ids = tokenizer.apply_chat_template(
        [{"role": "user", "content": "Compute 1+2."}],
        add_generation_prompt=True,
        return_tensors="pt",
    )
    ids = ids["input_ids"] if not torch.is_tensor(ids) else ids
    out_ids = model.generate(ids, max_new_tokens=5, do_sample=False)
    assert out_ids.shape[1] > ids.shape[1]


def test_same_config_is_reused_not_retrained(tiny, capsys):
    path, out = tiny
    stamp = (out / "model.safetensors").stat().st_mtime_ns
    assert pretrain(path, root=out.parent) == out
    printed = capsys.readouterr().out
    assert "Reusing organism" in printed and "peak memory (RSS)" in printed
    assert (out / "model.safetensors").stat().st_mtime_ns == stamp


def test_pretraining_is_deterministic(tiny, tmp_path):
    from safetensors.torch import load_file

    path, out = tiny
    again = pretrain(path, root=tmp_path)
    assert again.name == out.name
    first, second = load_file(out / "model.safetensors"), load_file(again / "model.safetensors")
    assert all((first[k] == second[k]).all() for k in first)


def test_output_folder_is_named_by_config_hash(tiny):
    path, out = tiny
    config = load_config(path, OrganismConfig)
    assert organism_dir(config, out.parent) == out
    config.train.steps += 1
    assert organism_dir(config, out.parent) != out


def test_sample_command_loads_the_organism_folder(tiny, capsys):
    from selfplay.cli import main

    _, out = tiny
    assert main(["sample", str(out), "--env", "modular", "--level", "1", "-n", "3"]) == 0
    printed = capsys.readouterr().out
    assert printed.count("verdict: score") == 3 and "modular/1234/1/0" in printed
    assert main(["sample", str(out), "--env", "modular", "--level", "9"]) == 2


def test_bf16_pretraining_learns_with_fp32_weights(tiny, tmp_path):
    """``train.precision: bf16`` trains under bf16 autocast: the loss ends finite and well
    below chance, the saved weights are fp32, and the folder is not the fp32 organism's."""
    import math

    import torch
    from transformers import AutoModelForCausalLM

    config_path, fp32_folder = tiny
    path = tmp_path / "tiny_bf16.yaml"
    text = config_path.read_text()
    assert "seed: 3}" in text
    path.write_text(text.replace("seed: 3}", "seed: 3, precision: bf16}"))
    folder = pretrain(path, root=tmp_path)
    assert folder.name != fp32_folder.name
    result = json.loads((folder / RESULT_FILE).read_text())
    chance = math.log(len(build_tokenizer()))
    assert math.isfinite(result["final_loss"]) and result["final_loss"] < 0.8 * chance, result
    assert result["precision"] == "bf16"
    assert json.loads((fp32_folder / RESULT_FILE).read_text())["precision"] == "fp32"
    model = AutoModelForCausalLM.from_pretrained(folder)
    assert all(p.dtype == torch.float32 for p in model.parameters())


def test_a_bad_precision_is_named(tiny, tmp_path):
    from selfplay.errors import ConfigError

    path = tmp_path / "tiny_fp8.yaml"
    path.write_text(tiny[0].read_text().replace("seed: 3}", "seed: 3, precision: fp8}"))
    with pytest.raises(ConfigError, match="train.precision must be one of fp32, bf16, auto"):
        pretrain(path, root=tmp_path)
    assert not list(tmp_path.glob("tiny-*"))
