"""Benchmarks, run by hand (never by pytest): ``python -m bench`` (see ``bench/__main__.py``).

Every contestant runs as a whole process on the same seeded delivery; the suite checks that
they all report the same failure counts before it prints any timing.
"""
