"""Benchmarks of the compile / solve / evaluate path (python -m benchmarks.run)."""
