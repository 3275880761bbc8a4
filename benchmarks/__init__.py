"""streamdag's benchmark harness: ``python -m benchmarks`` (``make bench``).

The workloads are defined in /work/shared/BENCHMARKS.md; see benchmarks/README.md.
"""
