"""Published NAS-Bench-201 numbers, for the "published" rows of the comparison table.

Taken from ``shared/research/criteria-spec.md`` §8 with the source named there; accuracy in
%, as (mean, std) with std None where the paper gave none.  These are other people's
results, printed beside ours and marked as such; nothing here is produced by the harness.
Keys are benchmark metric names (``<dataset>_<split>``, ``cifar10-valid_valid`` for the
CIFAR-10 validation column of NB201 Table 5).
"""
from __future__ import annotations

NB201_TABLE5 = "NB201 Table 5"
DARTS_PT = "DARTS-PT Table 4"
SOURCES = {
    NB201_TABLE5: "Dong & Yang, ICLR 2020, NAS-Bench-201, Table 5 (search on CIFAR-10; criteria-spec §8.1)",
    DARTS_PT: "Wang et al., ICLR 2021, Rethinking architecture selection in differentiable NAS, Table 4 "
              "(submission version; criteria-spec §8.4)",
}

_COLUMNS = ("cifar10-valid_valid", "cifar10_test", "cifar100_valid", "cifar100_test",
            "ImageNet16-120_valid", "ImageNet16-120_test")


def _row(label: str, source: str, *pairs: tuple[float, float | None] | None) -> dict:
    values = {m: p for m, p in zip(_COLUMNS, pairs) if p is not None}
    return {"label": label, "kind": "published", "source": source, "values": values}


ROWS: list[dict] = [
    _row("DARTS-V1 (magnitude)", NB201_TABLE5, (39.77, 0.0), (54.30, 0.0), (15.03, 0.0), (15.61, 0.0),
         (16.43, 0.0), (16.32, 0.0)),
    _row("DARTS-V2 (magnitude)", NB201_TABLE5, (39.77, 0.0), (54.30, 0.0), (15.03, 0.0), (15.61, 0.0),
         (16.43, 0.0), (16.32, 0.0)),
    _row("RSPS", NB201_TABLE5, (80.42, 3.58), (84.07, 3.61), (52.12, 5.55), (52.31, 5.77), (27.22, 3.24),
         (26.28, 3.09)),
    _row("GDAS", NB201_TABLE5, (89.89, 0.08), (93.61, 0.09), (71.34, 0.04), (70.70, 0.30), (41.59, 1.33),
         (41.71, 0.98)),
    _row("SETN", NB201_TABLE5, (84.04, 0.28), (87.64, 0.00), (58.86, 0.06), (59.05, 0.24), (33.06, 0.02),
         (32.52, 0.21)),
    _row("ENAS", NB201_TABLE5, (37.51, 3.19), (53.89, 0.58), (13.37, 2.35), (13.96, 2.33), (15.06, 1.95),
         (14.84, 2.10)),
    _row("Random search (RS)", NB201_TABLE5, None, (93.70, 0.36), None, None, None, None),
    _row("Optimal", NB201_TABLE5, (91.61, None), (94.37, None), (73.49, None), (73.51, None), (46.77, None),
         (47.31, None)),
    _row("DARTS + PT", DARTS_PT, None, (88.11, None), None, None, None, None),
    _row("DARTS + PT (fix alpha)", DARTS_PT, None, (93.80, None), None, None, None, None),
]
