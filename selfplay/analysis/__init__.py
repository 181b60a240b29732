"""Analysis of runs (``selfplay analyze``), in two halves whose imports go one way.

Compute (this package's modules) returns data and draws nothing: ``analyze`` gathers the parts
into ``summary.json``; ``reading`` reads a run folder; ``stats`` and ``evals`` are the
statistics and eval tables; ``conclusions`` decides elicited / newly acquired / not learned per
skill and behaviour; ``model_evals``, ``artefacts``, ``aha``, ``calibration``, ``hacking`` and
``play`` compute one part each. Render (``render``) draws the summary: the HTML report, one
module per section, and the conclusions' terminal table.
"""
