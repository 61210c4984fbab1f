"""What produced a measured row, and which rows may be pooled or printed side by side.

A report row pools runs only when their procedure is the same: the run's config identity
(``bench.search.config.SearchConfig.identity``; the seed is not a config field, so it is not part of
it), the method, and the selection (criterion, resolved options, validation size, none rule).
Groups that differ are labelled by the fields in which they differ (``C=4`` vs ``C=8``).
A profile name is only the name of a starting point: a run whose config differs from its
named profile (with the method's defaults, ``bench.search.config.resolve``) is described as changed
wherever the profile is named.
"""
from __future__ import annotations

import json
from typing import Iterable

from bench.errors import UserError
from bench.search import config as config_mod

SELECTION_FIELDS = ("valid_size", "allow_none")
"""Selection fields besides the criterion's options that a row is keyed by."""


def identity(cfg: dict) -> dict:
    """``SearchConfig.identity`` of a stored config; the stored dict itself if it no longer parses."""
    try:
        return config_mod.SearchConfig.from_dict(cfg).identity()
    except (TypeError, UserError):
        return dict(cfg)


def key(mapping: dict) -> str:
    """A canonical string of a mapping (for grouping and comparing)."""
    return json.dumps(mapping, sort_keys=True, default=str)


def profile_changes(profile: str, ident: dict) -> dict | None:
    """The fields in which ``ident`` differs from the named profile with its method's defaults
    (empty: the profile as defined); None when ``profile`` names no profile."""
    if profile not in config_mod.PROFILES:
        return None
    try:
        expected = config_mod.resolve(profile, method=ident.get("method", "darts")).identity()
    except UserError:
        return None
    names = sorted(set(expected) | set(ident))
    return {k: ident.get(k) for k in names if expected.get(k) != ident.get(k)}


def fields_text(mapping: dict, keys: Iterable[str] | None = None) -> str:
    """``k=v, k=v`` of ``mapping`` (the ``keys`` given, in order; default all)."""
    keys = list(mapping) if keys is None else list(keys)
    return ", ".join(f"{k}={_value(mapping.get(k))}" for k in keys)


def _value(value) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    return "-" if value is None else str(value)


def describe_profile(profile: str, ident: dict) -> str:
    """``smoke (3 epochs, C=4, N=1, 512/512 images)``; a changed profile says so and how."""
    size = (f"{ident.get('epochs')} epochs, C={ident.get('C')}, N={ident.get('N')}, "
            f"{ident.get('weight_size')}/{ident.get('alpha_size')} images")
    changes = profile_changes(profile, ident)
    if changes is None:
        return f"{profile} (not a named profile; {size})"
    if changes:
        return f"{profile} changed by {fields_text(changes)} ({size})"
    return f"{profile} ({size})"


def describe_selection(criterion: str, options: dict, valid_size, allow_none) -> str:
    """``darts-pt (crit=acc, bn_mode=train), validation 2000 images``; ``valid_size`` is None for a
    criterion that reads no data, 0 for the whole alpha half."""
    text = criterion + (f" ({fields_text(options)})" if options else "")
    if valid_size is not None and valid_size == valid_size:  # not NaN
        text += f", validation {f'{int(valid_size)} images' if valid_size else 'the whole alpha half'}"
    if allow_none is False:
        text += ", 'none' excluded"
    return text


def differing(items: list[dict]) -> list[str]:
    """The keys whose values are not the same in all ``items`` (in first-seen order)."""
    keys: list[str] = []
    for item in items:
        keys += [k for k in item if k not in keys]
    return [k for k in keys if len({key({"v": item.get(k)}) for item in items}) > 1]


def matches(procedure: dict, row: dict) -> bool:
    """Whether a measured row (profile, config identity, method, criterion, options, valid_size)
    was made by a published ``procedure`` (``bench.report.published``): the same profile name,
    a config equal to that profile's (with the procedure's overrides and the method's
    defaults), the same method and criterion, and the procedure's options."""
    if not procedure.get("profile") or row.get("profile") != procedure["profile"]:
        return False
    try:
        expected = config_mod.resolve(procedure["profile"], list(procedure.get("overrides", ())),
                                      method=procedure["method"]).identity()
    except UserError:  # a procedure no new run may follow matches no row
        return False
    if row.get("identity") != expected or row.get("method") != procedure["method"]:
        return False
    if row.get("criterion") not in procedure.get("criteria", ()):
        return False
    options = row.get("options") or {}
    if any(options.get(k) != v for k, v in procedure.get("options", {}).items()):
        return False
    wanted = procedure.get("valid_size", "any")
    size = row.get("valid_size")
    whole = size is not None and (size == 0 or size >= expected.get("alpha_size", 0))
    return wanted == "any" or (wanted == "all" and whole)
