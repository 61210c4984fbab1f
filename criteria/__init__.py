"""Selection criteria: each turns a trained supernet into an op-score matrix (6 x 5).

One small module per criterion, registered by name with ``@register`` (``criteria.registry``,
the pattern of the zero-cost-NAS measures registry); importing this package imports every
criterion, so the registry is complete: ``criteria.compute``, ``criteria.names()``,
``criteria.entry(name)``, ``criteria.resolve_options`` and ``criteria.Context``.
"""
from criteria import darts_pt, eoinas, magnitude, ostr, random_scores, zc_pt
from criteria.registry import (Context, Criterion, Entry, compute, entry, names, register, resolve_options,
                               unavailable)

__all__ = ["Context", "Criterion", "Entry", "compute", "entry", "names", "register", "resolve_options",
           "unavailable", "darts_pt", "eoinas", "magnitude", "ostr", "random_scores", "zc_pt"]
