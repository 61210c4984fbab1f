"""Readers of a run's selection records (``selections.jsonl``), below the code that writes them.

What identifies a record (``selection_key``), the validation size a request gets by default
(``valid_size_for``), the criterion names of records that hold no op scores (``SUPERNET``,
``HESSIAN``) and the records scored against a table at read time (``selections``).  Reports and
``show`` read records through here; ``bench.runs.select`` applies criteria and writes them.
"""
from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING

from bench import score

if TYPE_CHECKING:
    from bench.runs.runstore import Run

SUPERNET = score.SUPERNET
HESSIAN = score.HESSIAN
HESSIAN_VALID_SIZE = 512
"""Validation images of the collapse indicator when none is asked for (20 power iterations of
Hessian-vector products each cost a forward and two backward passes over them)."""
WHOLE_ALPHA_HALF = ("darts-pt-oneshot", "darts-pt-proj")
"""Criteria whose default validation set is the whole alpha half, as published (DARTS-PT's mask
test, ``criteria.darts_pt``)."""


DEFAULT_VALID_SIZE = 2000
"""Validation images per evaluation when none is asked for, except for DARTS-PT's mask test."""


def valid_size_for(name: str, valid_size: int | None) -> int | None:
    """Images per evaluation of criterion ``name`` (None = the whole alpha half): ``valid_size`` as
    asked (0 = the whole half), or when None the criterion's default: the whole half for DARTS-PT's
    mask test (``WHOLE_ALPHA_HALF``, as published), ``DEFAULT_VALID_SIZE`` otherwise."""
    if valid_size is None:
        return (None if name in WHOLE_ALPHA_HALF
                else HESSIAN_VALID_SIZE if name == HESSIAN else DEFAULT_VALID_SIZE)
    return valid_size or None


def selection_key(record: dict, needs_data: bool = True) -> str:
    """What identifies a selection record: epoch, criterion, resolved options, the none rule and,
    for criteria that read validation data, the validation size (protocol 4: sample size and
    validation size).  Records of earlier formats get the same key from their stored fields.
    ``needs_data``: whether the criterion reads validation data (``criteria.entry(name).needs_data``;
    ``bench.runs.select.selection_key`` looks it up)."""
    name = record["criterion"]
    if name == SUPERNET:
        identity = {"n": len(record.get("sample", [])), "valid_size": record.get("valid_size")}
    elif name == HESSIAN:
        identity = {"valid_size": record.get("valid_size")}
    else:
        identity = {"options": record.get("options", {}), "allow_none": bool(record.get("allow_none", True)),
                    "valid_size": record.get("valid_size") if needs_data else None}
    text = json.dumps({"epoch": int(record["epoch"]), "criterion": name, **identity}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def selections(run: Run, truth=None) -> list[dict]:
    """The run's selection records, scored against ``truth`` (when given) at read time."""
    records = run.selections()
    return records if truth is None else [score.score_selection(r, truth) for r in records]
