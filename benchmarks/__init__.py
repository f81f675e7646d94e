"""SOFA benchmarks: `python -m benchmarks` writes the evaluation report (see benchmarks/README.md)."""
