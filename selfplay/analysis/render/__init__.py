"""The analysis drawn: the HTML report (``report.write_report``), one module per section of it
(each a ``*_section`` function returning HTML parts), the helpers they share (``common``) and
the terminal table of the conclusions. Nothing here computes a number the summary lacks."""
