"""ossgate's benchmarks: each one measured against a baseline taken in the same run.

Throughput numbers from different runs, machines or load levels do not compare, so every
benchmark measures its own baseline (a bare endpoint doing the least the real one must do)
right next to the real thing, with the same server settings and the same load generator, and
reports the ratio. ``python -m bench`` runs them all and prints one table; ``--quick`` makes
each measurement short enough for a smoke test.

Adding a benchmark: write a module with ``run(options: Options) -> list[Row]`` and add it to
``BENCHMARKS`` in ``bench/__main__.py``. Use ``bench.processes`` for servers (it starts
gunicorn with the shared settings and always stops it) and ``bench.wrk`` for load.
"""
