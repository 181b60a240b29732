"""Loading a causal language model and its tokenizer from a folder or a hub name."""

from __future__ import annotations

import os
import socket
from pathlib import Path
from urllib.parse import urlparse

from selfplay.errors import ModelNotFound


def load_model(name_or_path: str | Path, dtype: str = "float32"):
    """Load ``(model, tokenizer)``: an organism folder, any local HF folder, or a hub name.

    A missing model is a one-line ``ModelNotFound``, not a stack trace from the hub client.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    source = str(name_or_path)
    local, offline = _locate(source)
    try:
        tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=offline)
        model = AutoModelForCausalLM.from_pretrained(
            source, dtype=getattr(torch, dtype), local_files_only=offline
        )
    except (OSError, ValueError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        where = "locally, and the hub is unreachable" if offline else "locally or from the hub"
        raise ModelNotFound(f"model {source!r} could not be loaded {where}: {first}") from None
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "left"
    return model, tokenizer


def load_model_config(name_or_path: str | Path):
    """The model's transformers config alone (no weights): a cheap check that it loads, and
    its shape (for the memory preflight). Raises ``ModelNotFound`` as ``load_model`` does."""
    from transformers import AutoConfig

    source = str(name_or_path)
    local, offline = _locate(source)
    try:
        return AutoConfig.from_pretrained(source, local_files_only=offline)
    except (OSError, ValueError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ModelNotFound(f"model {source!r}: its config could not be loaded: {first}") from None


def _locate(source: str) -> tuple[bool, bool]:
    """(local, offline) for a model name or path; a missing local folder is ModelNotFound."""
    path = Path(source).expanduser()
    local = path.exists() or source.startswith((".", "/", "~")) or source.count("/") > 1
    if local and not (path / "config.json").is_file():
        raise ModelNotFound(
            f"model {source!r}: no such model folder (expected {path / 'config.json'})"
        )
    # Without a network the hub client retries for half a minute; skip it when we know.
    return local, not local and not _hub_reachable()


def _hub_reachable() -> bool:
    """Whether the Hugging Face hub's host resolves (instant when there is no network)."""
    if os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes"):
        return False
    from huggingface_hub import constants

    try:
        socket.getaddrinfo(urlparse(constants.ENDPOINT).hostname, 443)
    except OSError:
        return False
    return True
