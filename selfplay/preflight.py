"""GPU memory preflight: will a GRPO run fit on its GPU? Asked before the run starts.

``check`` estimates the run's memory (``selfplay.gpu_memory``, where every formula is) and
raises ``PreflightError`` naming the largest terms and a setting that makes the run fit
(``fixes``); ``format_estimate`` renders the estimate as a rich table; ``gpu_total_memory``
alone asks torch for the GPU's size. The estimate's own names are importable from here too.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from selfplay.errors import ConfigError
from selfplay.gpu_memory import (
    CUDA_CONTEXT,
    DEFAULT_PROMPT_LENGTH,
    HEAD_TOKEN_TILE,
    HEAD_VOCAB_TILE,
    MARGIN,
    TRL_DEFAULTS,
    VLLM_BLOCK,
    VLLM_OVERHEAD,
    Estimate,
    GiB,
    GRPOSettings,
    Shape,
    Term,
    estimate,
    fused_head_default,
    gib,
    grpo_settings,
    max_model_len,
    model_shape,
)

__all__ = [
    "CUDA_CONTEXT",
    "DEFAULT_PROMPT_LENGTH",
    "HEAD_TOKEN_TILE",
    "HEAD_VOCAB_TILE",
    "MARGIN",
    "TRL_DEFAULTS",
    "VLLM_BLOCK",
    "VLLM_OVERHEAD",
    "Estimate",
    "Fix",
    "GRPOSettings",
    "GiB",
    "PreflightError",
    "Shape",
    "Term",
    "check",
    "estimate",
    "fixes",
    "format_estimate",
    "gib",
    "gpu_total_memory",
    "grpo_settings",
    "model_shape",
]


class PreflightError(ConfigError):
    """The run will not fit in GPU memory. ``estimate`` holds the figures, ``fixes`` the
    settings (``Fix.changes``, GRPOConfig option names) each of which makes it fit."""

    def __init__(self, message: str, estimate: Estimate, fixes: list[Fix]):
        super().__init__(message)
        self.estimate = estimate
        self.fixes = fixes


@dataclass(frozen=True)
class Fix:
    """One change of settings that makes ``check`` pass, and the peak it leads to."""

    text: str
    changes: dict[str, Any]
    peak: int


def check(model: Any, grpo: Any, total_memory: int, **options: Any) -> Estimate:
    """The estimate when the run fits in ``total_memory`` bytes, else ``PreflightError``.

    The error is one line: the problem, the largest terms at the peak, and every setting from
    ``fixes`` that alone makes the run fit (checkpointing, vLLM's share, sleep mode, the
    batch, server mode, vLLM's max model length), or else a combination, each with the peak
    it leads to. ``options`` as for ``estimate``.
    """
    est = estimate(model, grpo, total_memory, **options)
    problems = est.problems()
    if not problems:
        return est
    found = fixes(model, est.settings, total_memory, **options)
    largest = ", ".join(f"{t.name} {gib(t.bytes)}" for t in est.largest(3))
    advice = (
        "; or ".join(f"{f.text} (peak {gib(f.peak)})" for f in found)
        if found
        else "no change of these settings makes it fit: use a GPU with more memory or a "
        "smaller model"
    )
    message = f"GPU memory: {'; '.join(problems)}; largest: {largest}; fix: {advice}"
    raise PreflightError(message, est, found)


def fixes(model: Any, grpo: Any, total_memory: int, **options: Any) -> list[Fix]:
    """Single changes of settings after which ``estimate(...).fits`` holds, mildest first:
    checkpointing, vLLM's share (or its max model length), sleep mode, the largest batch
    (a multiple of ``num_generations``) that fits, server mode. When none is enough, one
    combination: checkpointing and sleep mode on, and the largest batch that then fits."""
    s = grpo_settings(grpo, options.pop("prompt_length", None))
    if options.get("fused_lm_head") is None:
        options["fused_lm_head"] = fused_head_default()
    est = estimate(model, s, total_memory, **options)
    offers: list[tuple[str, dict[str, Any]]] = []
    k = "grpo."  # the run config's section of GRPOConfig options

    def offer(text: str, **changes: Any) -> None:
        offers.append((text, changes))

    if not s.gradient_checkpointing:
        offer(f"set {k}{s.checkpointing_key}: true", gradient_checkpointing=True)
    colocate = s.use_vllm and s.vllm_mode == "colocate"
    if colocate:
        need = est["vllm_weights"] + est["vllm_overhead"] + est["vllm_kv_one_sequence"]
        if need > est["vllm"]:
            low = math.ceil(need / total_memory * 100) / 100
            offer(
                f"raise {k}vllm_gpu_memory_utilization to {low:.2f}",
                vllm_gpu_memory_utilization=low,
            )
            length = s.prompt_length + s.max_completion_length
            if max_model_len(est.shape, s) > length:
                offer(f"set {k}vllm_max_model_length: {length}", vllm_max_model_length=length)
        else:
            over = (est.peak - (est.usable or 0)) / total_memory
            high = math.floor((s.vllm_gpu_memory_utilization - over) * 100) / 100
            if high > 0:
                offer(
                    f"lower {k}vllm_gpu_memory_utilization to {high:.2f}",
                    vllm_gpu_memory_utilization=high,
                )
        if not s.vllm_enable_sleep_mode:
            offer(f"set {k}vllm_enable_sleep_mode: true", vllm_enable_sleep_mode=True)
    g = s.num_generations
    for batch in range(s.per_device_train_batch_size - g, 0, -g):
        smaller = dataclasses.replace(s, per_device_train_batch_size=batch)
        if estimate(model, smaller, total_memory, **options).fits:
            offer(
                f"lower {k}per_device_train_batch_size to {batch}",
                per_device_train_batch_size=batch,
            )
            break
    if colocate:
        offer(f"use {k}vllm_mode: server (vLLM on another GPU)", vllm_mode="server")
    found = []
    for text, changes in offers:
        trial = estimate(model, dataclasses.replace(s, **changes), total_memory, **options)
        if trial.fits:
            found.append(Fix(text, _named(s, changes), trial.peak))
    return found or _combined(model, s, total_memory, options, offers)


def _combined(model, s: GRPOSettings, total_memory: int, options: dict, offers: list) -> list[Fix]:
    """When no single change is enough: the switches offered (checkpointing, sleep mode)
    together, with the largest batch that then fits."""
    switches = {
        name: True
        for _, changes in offers
        for name in changes
        if name in ("gradient_checkpointing", "vllm_enable_sleep_mode")
    }
    if not switches:
        return []
    texts = [text for text, changes in offers if changes.keys() & switches.keys()]
    on = dataclasses.replace(s, **switches)
    for batch in range(s.per_device_train_batch_size, 0, -s.num_generations):
        trial = estimate(
            model,
            dataclasses.replace(on, per_device_train_batch_size=batch),
            total_memory,
            **options,
        )
        if trial.fits:
            if batch != s.per_device_train_batch_size:
                texts.append(f"lower grpo.per_device_train_batch_size to {batch}")
                switches["per_device_train_batch_size"] = batch
            return [Fix(" and ".join(texts), _named(s, switches), trial.peak)]
    return []


def _named(s: GRPOSettings, changes: dict[str, Any]) -> dict[str, Any]:
    """``changes`` with the checkpointing option under the name the run uses."""
    return {
        s.checkpointing_key if n == "gradient_checkpointing" else n: v for n, v in changes.items()
    }


def format_estimate(est: Estimate):
    """A rich table of the estimate: each term, its phase, GiB, share of the peak, formula."""
    from rich.table import Table

    title = f"GPU memory estimate: peak {gib(est.peak)} ({est.peak_phase})"
    if est.total_memory:
        title += f" of {gib(est.usable)} usable"
        title += f" ({gib(est.total_memory)} GPU, {est.margin:.0%} kept free)"
    table = Table(title=title)
    for column in ("term", "phase", "GiB", "of peak", "formula"):
        table.add_column(column, justify="right" if column in ("GiB", "of peak") else "left")
    order = {"static": 0, "train": 1, "generate": 2, "vllm": 3}
    for t in sorted(est.terms, key=lambda t: (order[t.phase], -t.bytes)):
        counted = t.phase in ("static", est.peak_phase)
        share = f"{t.bytes / est.peak:.0%}" if counted and est.peak else ""
        phase = "in vllm" if t.phase == "vllm" else t.phase
        table.add_row(t.name, phase, f"{t.bytes / GiB:.3f}", share, t.formula)
    for phase in ("static", "train", "generate"):
        table.add_row(f"[bold]{phase}[/bold]", "", f"{est.phase(phase) / GiB:.3f}", "", "")
    table.add_row(
        "[bold]peak[/bold]", "", f"{est.peak / GiB:.3f}", "100%", f"static + {est.peak_phase}"
    )
    if est.notes:
        table.caption = " ".join(est.notes)
    return table


def gpu_total_memory(device: int = 0) -> int | None:
    """Total bytes of a CUDA GPU, or ``None`` without one."""
    import torch

    if not torch.cuda.is_available():
        return None
    return int(torch.cuda.get_device_properties(device).total_memory)
