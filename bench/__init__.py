"""Benchmarks: run with ``python -m bench.<name>``; figures go to ``bench/RESULTS.md``."""
