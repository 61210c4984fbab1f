"""The registry of search methods: ``METHODS`` by name, the options dataclasses
``bench.search.config.SearchConfig`` is composed of, and ``get``.  Adding a method: its module
here (options dataclass + ``Method`` subclass) and its class in ``METHODS``."""
from __future__ import annotations

from typing import TYPE_CHECKING

from bench.errors import UserError
from bench.search.methods.base import Method
from bench.search.methods.entrannas import EnTranNAS
from bench.search.methods.eoinas import EoiNAS
from bench.search.methods.fix_alpha import FixAlpha
from bench.search.methods.nap import NAP

if TYPE_CHECKING:
    from bench.search.config import SearchConfig

METHODS = {m.name: m for m in (Method, FixAlpha, NAP, EoiNAS, EnTranNAS)}
"""Registered search methods; adding one means its class (with ``options``) and an entry here."""

METHOD_OPTIONS = tuple(dict.fromkeys(m.options for m in METHODS.values()))
"""The options dataclasses ``bench.search.config.SearchConfig`` is composed of."""


def get(cfg: SearchConfig, seed: int = 0) -> Method:
    if cfg.method not in METHODS:
        raise UserError(f"Unknown method {cfg.method!r}; available: {', '.join(METHODS)}")
    return METHODS[cfg.method](cfg, seed)
