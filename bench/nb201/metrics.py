"""Benchmark metric names: the one place that says which metrics exist, which are headline, how they read.

A metric name is ``<dataset>_<quantity>[_12ep]`` (see ``bench.nb201.benchmark``).  The CLI, the scoring
stage, the reports, the curves and the notebooks read these lists; no other module spells them.
"""
from __future__ import annotations

DEFAULT_METRIC = "cifar10_test"
"""The metric of a single number (``tau_arch`` of a search epoch, the first tau column)."""

HEADLINE_METRICS = ("cifar10_test", "cifar100_test", "ImageNet16-120_test")
"""The three test accuracies NB201's Table 5 reports; rank correlations are computed on these."""

REPORTED_METRICS = HEADLINE_METRICS + ("cifar10-valid_valid",)
"""The accuracies looked up for every derived cell."""

TABLE_ORDER = ("cifar10_test", "cifar100_test", "ImageNet16-120_test", "cifar10-valid_valid", "cifar10_valid",
               "cifar100_valid", "ImageNet16-120_valid")
"""Column order of accuracies in tables and figures."""

LABELS = {"cifar10_test": "CIFAR-10 test", "cifar100_test": "CIFAR-100 test",
          "ImageNet16-120_test": "ImageNet16-120 test", "cifar10-valid_valid": "CIFAR-10 valid",
          "cifar10_valid": "CIFAR-10 valid (test half)", "cifar100_valid": "CIFAR-100 valid",
          "ImageNet16-120_valid": "ImageNet16-120 valid"}


def label(metric: str) -> str:
    """A metric's name as a reader reads it."""
    return LABELS.get(metric, metric)


def present(names, truth) -> list[str]:
    """The metrics of ``names`` that the ground-truth table ``truth`` holds, in order."""
    return [m for m in names if m in truth.metrics]
