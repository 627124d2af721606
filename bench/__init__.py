"""Benchmarks of the serving layer against the loopback Nekos API fake, each beside a naive bot.

Run one with ``.venv/bin/python -m bench.burst`` (``sustained``, ``mixed``, ``cpu``, or ``all``);
``--quick`` gives a few-second smoke run. See BENCHMARKS.md for what each measures and the figures.
"""
