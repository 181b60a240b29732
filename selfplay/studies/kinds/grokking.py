"""Grokking: modular arithmetic learned from a fraction of all pairs, with weight decay.

Power et al. (2022) trained small transformers on ``a o b mod p`` from part of the table and
saw test accuracy jump to 100% long after train accuracy had; Nanda et al. (2023) showed the
network computes it with a few Fourier frequencies and that continuous "progress measures"
move before the jump. An arm here trains their one-layer transformer (learned embeddings and
positions, four heads, a ReLU MLP, no layer norm; the tokens are ``a b =`` and the answer is
read at ``=``) full batch with AdamW, and logs every ``eval_every`` steps: train and test
accuracy and loss, the parameters' L2 norm and the Fourier concentration of the embedding
(the share of its non-constant power over the token axis in the ``fourier_top`` strongest
frequencies: low for a random matrix, near 1 for the papers' circuit).

Only the ``=`` position is computed past attention (the answer is read there and one layer
has nothing above it), which gives the same function at a third of the MLP's cost.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

OPERATIONS = ("add", "sub", "mul")

MEASURES = {
    "steps_to_memorise": "first logged step with train accuracy >= 0.99",
    "steps_to_generalise": "first logged step with test accuracy >= 0.99 (undefined if never)",
    "delay_ratio": "steps to generalise / steps to memorise (the full budget's steps when it "
    "never generalised: a lower bound)",
    "final_train_accuracy": "train accuracy at the last step",
    "final_test_accuracy": "test accuracy at the last step",
    "lead_fourier": "(onset of the test-accuracy rise - onset of the Fourier concentration's "
    "rise) / (steps to generalise - steps to memorise); > 0 when it moves first",
    "lead_weight_norm": "the same lead for the fall of the parameters' norm",
    "lead_test_loss": "the same lead for the fall of the test loss",
}
"""Measure -> meaning. An onset is the first logged step, from the step train accuracy
reached 0.99 on, at which a series has covered ``onset`` of its way from its value then to
its extreme (maximum for accuracy and concentration, minimum for norm and loss) after it."""

SERIES = ("train_accuracy", "test_accuracy", "train_loss", "test_loss", "weight_norm", "fourier")


@dataclass
class Settings:
    """One grokking arm's knobs (defaults: the study's full size)."""

    modulus: int = 59
    """p: the tokens are 0..p-1 and the answer is ``a o b mod p``."""
    operation: str = "add"
    """add, sub or mul."""
    train_fraction: float = 0.4
    """Share of the p*p pairs trained on; the rest is the test set."""
    steps: int = 4000
    """Full-batch AdamW steps."""
    eval_every: int = 25
    """Steps between logged points."""
    lr: float = 3e-3
    """AdamW learning rate (betas 0.9, 0.98, as Nanda et al.)."""
    weight_decay: float = 1.0
    """AdamW weight decay (decoupled)."""
    d_model: int = 128
    """Width of the residual stream."""
    heads: int = 4
    """Attention heads (d_model must divide by it)."""
    d_mlp: int = 512
    """Width of the MLP."""
    fourier_top: int = 6
    """Frequencies counted in the Fourier concentration."""
    onset: float = 0.1
    """Share of a series' movement that marks its onset (see MEASURES)."""
    threads: int = 1
    """torch threads: fixed, so an arm gives the same numbers in-process and on Ray."""

    def __post_init__(self) -> None:
        checks = [
            (3 <= self.modulus <= 1000, "modulus", "between 3 and 1000"),
            (self.operation in OPERATIONS, "operation", f"one of {', '.join(OPERATIONS)}"),
            (0.0 < self.train_fraction < 1.0, "train_fraction", "in (0, 1)"),
            (self.steps >= 1, "steps", ">= 1"),
            (1 <= self.eval_every <= self.steps, "eval_every", "between 1 and steps"),
            (self.lr > 0, "lr", "> 0"),
            (self.weight_decay >= 0, "weight_decay", ">= 0"),
            (self.d_model >= 1 and self.d_mlp >= 1, "d_model", "and d_mlp >= 1"),
            (self.heads >= 1 and self.d_model % self.heads == 0, "heads", "a divisor of d_model"),
            (1 <= self.fourier_top <= self.modulus // 2, "fourier_top", "in 1..modulus // 2"),
            (0.0 < self.onset < 1.0, "onset", "in (0, 1)"),
            (1 <= self.threads <= 256, "threads", "between 1 and 256"),
        ]
        for ok, key, what in checks:
            if not ok:
                raise ValueError(f"key '{key}': must be {what}, got {getattr(self, key)!r}")
        train = int(self.train_fraction * self.modulus**2)
        if not 1 <= train < self.modulus**2:
            raise ValueError(
                f"key 'train_fraction': {self.train_fraction} of {self.modulus}^2 pairs leaves "
                "no train or no test pair"
            )


def run(
    settings: Settings, seed: int, folder: Path, console=None, shared: Path | None = None
) -> dict[str, Any]:
    """Train one arm at ``seed``; return its measures and logged series. With a rich
    ``console``, a progress bar shows the steps."""
    import torch

    torch.set_num_threads(settings.threads)
    start = time.perf_counter()
    p = settings.modulus
    generator = torch.Generator().manual_seed(seed)
    pairs = torch.cartesian_prod(torch.arange(p), torch.arange(p))
    order = torch.randperm(len(pairs), generator=generator)
    cut = int(settings.train_fraction * len(pairs))
    train_x, test_x = pairs[order[:cut]], pairs[order[cut:]]
    train_y, test_y = _answer(train_x, settings), _answer(test_x, settings)
    torch.manual_seed(seed)
    model = _model(settings)
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=settings.lr, weight_decay=settings.weight_decay, betas=(0.9, 0.98)
    )
    series: dict[str, list[float]] = {"step": [], **{name: [] for name in SERIES}}
    with _bar(console, settings.steps) as advance:
        _train(
            settings, seed, model, optimizer, (train_x, train_y, test_x, test_y), series, advance
        )
    return {
        "measures": measures(series, settings),
        "series": series,
        "seconds": time.perf_counter() - start,
    }


def _train(settings, seed, model, optimizer, data, series, advance) -> None:
    """Full-batch steps, logging a point every ``eval_every`` steps into ``series``."""
    import torch

    train_x, train_y, test_x, test_y = data
    p = settings.modulus
    loss_of = torch.nn.functional.cross_entropy
    for step in range(settings.steps + 1):
        logits = model(train_x)
        loss = loss_of(logits, train_y)
        if step % settings.eval_every == 0 or step == settings.steps:
            with torch.no_grad():
                test_logits = model(test_x)
                point = {
                    "train_accuracy": (logits.argmax(-1) == train_y).float().mean(),
                    "test_accuracy": (test_logits.argmax(-1) == test_y).float().mean(),
                    "train_loss": loss.detach(),
                    "test_loss": loss_of(test_logits, test_y),
                    "weight_norm": torch.sqrt(sum((w**2).sum() for w in model.parameters())),
                    "fourier": _fourier_concentration(model.embed[:p], settings.fourier_top),
                }
            series["step"].append(step)
            for name, value in point.items():
                series[name].append(float(value))
            if not all(math.isfinite(series[name][-1]) for name in SERIES):
                raise FloatingPointError(
                    f"grokking arm, seed {seed}: a non-finite value at step {step} "
                    f"({ {n: series[n][-1] for n in SERIES} }); lower lr"
                )
            advance(step)
        if step == settings.steps:
            break
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()


@contextlib.contextmanager
def _bar(console, total: int) -> Iterator[Callable[[int], None]]:
    """A rich progress bar of the steps on ``console`` (nothing without one): yields a
    function that sets the step reached."""
    if console is None:
        yield lambda step: None
        return
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    columns = (TextColumn("steps"), BarColumn(), TextColumn("{task.completed}/{task.total}"))
    with Progress(*columns, TimeElapsedColumn(), console=console) as progress:
        task = progress.add_task("steps", total=total)
        yield lambda step: progress.update(task, completed=step)


def measures(series: dict[str, list[float]], settings: Settings) -> dict[str, float | None]:
    """The MEASURES of one arm's logged series (pure, so it is tested on constructed curves)."""
    steps = series["step"]
    memorised = _first(steps, series["train_accuracy"], 0.99)
    generalised = _first(steps, series["test_accuracy"], 0.99)
    out: dict[str, float | None] = {
        "steps_to_memorise": memorised,
        "steps_to_generalise": generalised,
        "delay_ratio": None,
        "final_train_accuracy": series["train_accuracy"][-1],
        "final_test_accuracy": series["test_accuracy"][-1],
        "lead_fourier": None,
        "lead_weight_norm": None,
        "lead_test_loss": None,
    }
    if memorised is None:
        return out
    out["delay_ratio"] = (generalised if generalised is not None else steps[-1]) / max(memorised, 1)
    if generalised is None or generalised <= memorised:
        return out
    start = steps.index(memorised)
    accuracy = _onset(steps, series["test_accuracy"], start, settings.onset, rising=True)
    if accuracy is None:
        return out
    plateau = generalised - memorised
    for name, key, rising in (
        ("lead_fourier", "fourier", True),
        ("lead_weight_norm", "weight_norm", False),
        ("lead_test_loss", "test_loss", False),
    ):
        onset = _onset(steps, series[key], start, settings.onset, rising)
        out[name] = None if onset is None else (accuracy - onset) / plateau
    return out


def _first(steps: list[int], values: list[float], level: float) -> int | None:
    return next((s for s, v in zip(steps, values, strict=True) if v >= level), None)


def _onset(
    steps: list[int], values: list[float], start: int, share: float, rising: bool
) -> int | None:
    """The first step from index ``start`` on where ``values`` has covered ``share`` of its
    way from ``values[start]`` to its extreme after it; None when it does not move that way."""
    sign = 1.0 if rising else -1.0
    moved = [sign * (v - values[start]) for v in values[start:]]
    total = max(moved)
    if total <= 0:
        return None
    return next(s for s, m in zip(steps[start:], moved, strict=True) if m >= share * total)


def _answer(x, settings: Settings):
    a, b = x[:, 0], x[:, 1]
    if settings.operation == "add":
        return (a + b) % settings.modulus
    if settings.operation == "sub":
        return (a - b) % settings.modulus
    return (a * b) % settings.modulus


def _fourier_concentration(embed, top: int) -> float:
    """Share of the embedding's non-constant power (over the token axis) in its ``top``
    strongest frequencies."""
    import torch

    power = (torch.fft.rfft(embed.double(), dim=0).abs() ** 2).sum(dim=1)[1:]
    return float(power.topk(top).values.sum() / power.sum())


def _model(settings: Settings):
    import torch
    from torch import nn

    class OneLayer(nn.Module):
        """Nanda et al.'s one-layer transformer, computed at the ``=`` position only."""

        def __init__(self) -> None:
            super().__init__()
            d, p = settings.d_model, settings.modulus
            self.embed = nn.Parameter(torch.randn(p + 1, d) / math.sqrt(d))  # p is "="
            self.position = nn.Parameter(torch.randn(3, d) / math.sqrt(d))
            self.query, self.key, self.value, self.out = (
                nn.Linear(d, d, bias=False) for _ in range(4)
            )
            self.up, self.down = nn.Linear(d, settings.d_mlp), nn.Linear(settings.d_mlp, d)
            self.unembed = nn.Linear(d, p, bias=False)

        def forward(self, x):
            n, d, h = len(x), settings.d_model, settings.heads
            equals = torch.full((n, 1), settings.modulus)
            resid = self.embed[torch.cat([x, equals], dim=1)] + self.position
            q = self.query(resid[:, -1:]).view(n, 1, h, d // h).transpose(1, 2)
            k = self.key(resid).view(n, 3, h, d // h).transpose(1, 2)
            v = self.value(resid).view(n, 3, h, d // h).transpose(1, 2)
            attended = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(d // h), dim=-1) @ v
            last = resid[:, -1] + self.out(attended.transpose(1, 2).reshape(n, d))
            last = last + self.down(torch.relu(self.up(last)))
            return self.unembed(last)

    return OneLayer()


def figures(arms: list[dict[str, Any]]) -> list[str]:
    """Per arm (``{"name", "label", "units": [{"seed", "series"}]}``): accuracy (train
    dashed, test solid) and the three progress measures over steps, every seed a colour."""
    from selfplay.analysis.render.common import escape, figure, png

    parts = []
    panels = (
        ("accuracy", ("train_accuracy", "test_accuracy")),
        ("Fourier concentration", ("fourier",)),
        ("parameter norm", ("weight_norm",)),
        ("test loss", ("test_loss",)),
    )
    for arm in arms:
        fig, axes = figure(1, len(panels), width=13, height=2.8)
        for ax, (title, keys) in zip(axes[0], panels, strict=True):
            for i, unit in enumerate(arm["units"]):
                s = unit["series"]
                for key in keys:
                    ax.plot(
                        s["step"],
                        s[key],
                        color=f"C{i % 10}",
                        linestyle="--" if key.startswith("train") else "-",
                        linewidth=1,
                        label=f"seed {unit['seed']}" if key == keys[-1] else None,
                    )
            ax.set_title(title, fontsize=10)
            ax.set_xlabel("step")
            if "test_loss" in keys:
                ax.set_yscale("log")
        axes[0][0].legend(fontsize=7)
        parts.append(f"<h3>{escape(arm['name'])}: {escape(arm['label'])}</h3>{png(fig)}")
    return parts
