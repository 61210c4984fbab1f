"""Published NAS-Bench-201 numbers, for the "published" rows of the comparison table.

Listed with their sources in ``docs/criteria.md`` §10; accuracy in
%, as (mean, std) with std None where the paper gave none.  These are other people's
results, printed beside ours and marked as such; nothing here is produced by the harness.
Keys are benchmark metric names (``<dataset>_<split>``, ``cifar10-valid_valid`` for the
CIFAR-10 validation column of NB201 Table 5).

Each row names the procedure that produced it (``procedure``: the text, and for procedures
this harness implements the profile, config overrides, method, criteria and options that
``bench.report.procedure.matches`` compares a measured row with) and the notes its source
gives (``note``).  The comparison table prints a published row beside a measured one only
when the procedures match.
"""
from __future__ import annotations

from criteria.darts_pt import MASK_TEST, PROJECTION

NB201_TABLE5 = "NB201 Table 5"
DARTS_PT = "DARTS-PT Table 4"
SOURCES = {
    NB201_TABLE5: "Dong & Yang, ICLR 2020, NAS-Bench-201, Table 5 (CIFAR-10 search; docs/criteria.md §10)",
    DARTS_PT: "Wang et al., ICLR 2021, Rethinking architecture selection in differentiable NAS, Table 4 "
              "(submission version; docs/criteria.md §10)",
}

_COLUMNS = ("cifar10-valid_valid", "cifar10_test", "cifar100_valid", "cifar100_test",
            "ImageNet16-120_valid", "ImageNet16-120_test")


NB201_DARTS = "NB201's DARTS search: paper profile (50 epochs, C=16, N=5, 25k/25k images), "
"""Shared text of NB201's DARTS rows."""
DARTS_PT_SUPERNET = "darts-pt profile (100 epochs, C=16, N=5, 25k/25k images)"
PT_OPTIONS = {k: v for k, v in {**MASK_TEST, **PROJECTION}.items() if k != "masks_together"}
"""DARTS-PT's published projection (``masks_together`` changes only the speed)."""
PT_PROCEDURE = ("darts-pt-proj (proj_intv=5, full tuning epochs, crit=acc, bn_mode=train), validation the "
                "whole alpha half, final epoch")


def _elsewhere(name: str) -> dict:
    """The procedure of a method this harness does not implement."""
    return {"text": f"{name} as searched in NB201's own experiments (not a procedure of this harness)"}


def _row(label: str, source: str, procedure: dict | None, *pairs: tuple[float, float | None] | None,
         note: str = "") -> dict:
    """``procedure`` None: no search procedure (a property of the benchmark itself)."""
    values = {m: p for m, p in zip(_COLUMNS, pairs) if p is not None}
    return {"label": label, "kind": "published", "source": source, "values": values, "procedure": procedure,
            "note": note}


ROWS: list[dict] = [
    _row("DARTS-V1 (magnitude)", NB201_TABLE5,
         {"text": NB201_DARTS + "DARTS first order, magnitude cell, final epoch", "profile": "paper",
          "method": "darts", "criteria": ("search", "magnitude")},
         (39.77, 0.0), (54.30, 0.0), (15.03, 0.0), (15.61, 0.0), (16.43, 0.0), (16.32, 0.0)),
    _row("DARTS-V2 (magnitude)", NB201_TABLE5,
         {"text": NB201_DARTS + "DARTS second order (order=second), magnitude cell, final epoch",
          "profile": "paper", "overrides": ("order=second",), "method": "darts",
          "criteria": ("search", "magnitude")},
         (39.77, 0.0), (54.30, 0.0), (15.03, 0.0), (15.61, 0.0), (16.43, 0.0), (16.32, 0.0)),
    _row("RSPS", NB201_TABLE5, _elsewhere("Random search with parameter sharing"), (80.42, 3.58),
         (84.07, 3.61), (52.12, 5.55), (52.31, 5.77), (27.22, 3.24), (26.28, 3.09)),
    _row("GDAS", NB201_TABLE5, _elsewhere("GDAS"), (89.89, 0.08), (93.61, 0.09), (71.34, 0.04), (70.70, 0.30),
         (41.59, 1.33), (41.71, 0.98)),
    _row("SETN", NB201_TABLE5, _elsewhere("SETN"), (84.04, 0.28), (87.64, 0.00), (58.86, 0.06), (59.05, 0.24),
         (33.06, 0.02), (32.52, 0.21)),
    _row("ENAS", NB201_TABLE5, _elsewhere("ENAS"), (37.51, 3.19), (53.89, 0.58), (13.37, 2.35), (13.96, 2.33),
         (15.06, 1.95), (14.84, 2.10)),
    _row("Random search (RS)", NB201_TABLE5, _elsewhere("Random search without parameter sharing"), None,
         (93.70, 0.36), None, None, None, None),
    _row("Optimal", NB201_TABLE5, None, (91.61, None), (94.37, None), (73.49, None), (73.51, None),
         (46.77, None), (47.31, None)),
    _row("DARTS + PT", DARTS_PT,
         {"text": f"{DARTS_PT_SUPERNET}, DARTS first order, {PT_PROCEDURE}", "profile": "darts-pt",
          "method": "darts", "criteria": ("darts-pt-proj",), "options": PT_OPTIONS, "valid_size": "all"},
         None, (88.11, None), None, None, None, None,
         note="the paper gives no std for DARTS-PT; the first author's public reruns gave 88.21 and 88.18 "
              "(seeds 0, 1)"),
    _row("DARTS + PT (fix alpha)", DARTS_PT,
         {"text": f"{DARTS_PT_SUPERNET}, alpha fixed at its initialisation (darts-fix-alpha), {PT_PROCEDURE}",
          "profile": "darts-pt", "method": "darts-fix-alpha", "criteria": ("darts-pt-proj", "search"),
          "options": PT_OPTIONS, "valid_size": "all"},
         None, (93.80, None), None, None, None, None, note="the paper gives no std for DARTS-PT"),
]
