"""Runs: their records (``records``), the lock (``lock``), the metric writer (``writer``), the live
handle users hold (``run``) and the comparison of two runs (``diff``)."""
