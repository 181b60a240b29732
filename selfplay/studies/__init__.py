"""Studies: runs are to a study what steps are to a run.

A study config (``configs/studies/``) names a published claim and its source, the arms that
test it (each arm one kind of experiment at some settings, run once per seed), and the rule
that decides ``replicated``, ``not replicated`` or ``inconclusive``, fixed before the run.
``selfplay study CONFIG`` runs the arms (one after another, or as parallel Ray tasks),
summarises each measure over seeds with a t interval, applies the rule and writes
``study.json`` and ``study.html``. Modules: ``config`` (the schema), ``conclusion`` (the rule,
pure), ``kinds`` (what an arm runs), ``run`` (the driver), ``render`` (the page).
"""
