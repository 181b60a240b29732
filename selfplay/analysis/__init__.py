"""Analysis of runs: statistics, verdicts, the report."""
