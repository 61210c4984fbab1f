"""NAS-Bench-201 architecture-selection harness.

Data flows one way, one sub-package per stage: ``bench.data`` -> ``bench.nets`` (supernet) ->
``bench.search`` -> ``bench.runs`` (checkpoints, selections) -> ``criteria`` -> ``bench.score`` ->
``bench.nb201`` (ground truth) -> ``bench.stats`` -> ``bench.report``.
"""
__version__ = "0.1.0"
