"""Side-by-side benchmarks: ``python -m benchmarks [NAME ...]`` (``make bench``).

Each ``bench_<name>.py`` module exposes ``run() -> list[dict]``; every row compares
candidates measured in the same run, so ratios hold even on a busy machine.
"""
