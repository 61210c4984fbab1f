"""NAS-Bench-201 architecture-selection harness.

Data flows one way: ``bench.data`` -> ``bench.supernet`` -> ``bench.search`` ->
``criteria`` -> ``bench.benchmark`` (ground truth) -> ``bench.stats`` -> reports.
"""
__version__ = "0.1.0"
