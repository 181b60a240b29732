"""What an arm of a study runs: one module per kind, in ``KINDS``.

A kind module has ``Settings`` (a config dataclass: the arm's knobs), ``MEASURES`` (each
measure it reports per seed, with its meaning), ``run(settings, seed, folder, console,
shared)`` (one arm at one seed, in ``folder``; returns ``{"measures": {...}, "series":
{...}}``) and ``figures(arms)`` (the page's plots from each arm's logged series). It may have
``check(settings, source)`` (raise a ConfigError before anything runs) and ``prepare(settings,
console, shared)`` (work done once in the driver before the arms, kept in the study's folder
``shared`` that every ``run`` is given: an organism that parallel arms would otherwise
pretrain at once, or the bands kind's base draws). Importing one is light: torch and the
rest are imported inside the functions.
"""

from __future__ import annotations

from types import ModuleType

from selfplay.studies.kinds import artefacts, bands, grokking, grpo

KINDS: dict[str, ModuleType] = {
    "artefacts": artefacts,
    "bands": bands,
    "grokking": grokking,
    "grpo": grpo,
}
"""Study kind name -> its module."""
