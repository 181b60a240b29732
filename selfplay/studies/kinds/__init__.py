"""What an arm of a study runs: one module per kind, in ``KINDS``.

A kind module has ``Settings`` (a config dataclass: the arm's knobs), ``MEASURES`` (each
measure it reports per seed, with its meaning), ``run(settings, seed, folder, progress)``
(one arm at one seed, in ``folder``; returns ``{"measures": {...}, "series": {...}}``) and
``figures(study)`` (the page's plots from ``study.json``'s arms). Importing one is light:
torch and the rest are imported inside ``run``.
"""

from __future__ import annotations

from types import ModuleType

from selfplay.studies.kinds import grokking

KINDS: dict[str, ModuleType] = {"grokking": grokking}
"""Study kind name -> its module."""
