"""Search configuration and the named profiles (docs/criteria.md §8.1).

A profile is a complete ``SearchConfig``; ``--set key=value`` overrides single fields and
every value is validated with a message naming the field and its allowed range.

Profiles:
- ``paper``: NB201 DARTS-V1 (AutoDL ``DARTS.config``, docs/criteria.md §8.1): C=16, N=5,
  50 epochs, batch 64, 25k/25k, SGD 0.025 nesterov wd 5e-4 cosine to 1e-3, clip 5,
  Adam 3e-4 (0.5, 0.999) wd 1e-3, weight step then alpha step.
- ``darts-pt``: DARTS-PT's supernet (docs/criteria.md §8.1): 100 epochs, wd 3e-4, no
  nesterov, alpha step then weight step, checkpoints every 20 epochs.
- ``smoke``: a tiny real-data run for tests and the demo (well under 2 minutes on 2 cores).
- ``cpu``: a real CIFAR-10 study that takes about an hour on 2 CPU cores; sizes chosen by
  measurement (see README, "Profiles").
- ``reference``: the reference study (``results/reference/``): DARTS-V1's recipe at C=8, N=1,
  40 epochs on 10k/10k images, cell BN without running statistics, checkpoints every 5th
  epoch; the smallest size at which DARTS's magnitude cell degenerates on CPU (README there).
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import sys
from dataclasses import dataclass, field, fields

from bench.errors import UserError
from bench.search.methods import METHOD_OPTIONS, METHODS
from bench.search.methods.base import non_negative, one_of


@dataclass(frozen=True)
class TrainingConfig:
    """What every search method shares: the supernet, the data split and DARTS's optimisers."""

    method: str = "darts"           # search method (bench.search.methods.METHODS)
    order: str = "first"            # DARTS order: first (V1) or second (V2, unrolled)
    step_order: str = "weight-first"  # weight-first (NB201 V1) or alpha-first (darts-pt)
    C: int = 16
    N: int = 5
    num_classes: int = 10
    affine: bool = False
    track_running_stats: bool = True
    relaxation: str = "softmax"     # alpha -> mixing weights (bench.nets.relaxation)
    epochs: int = 50
    batch_size: int = 64
    weight_size: int = 25000        # images in the weight half (trains the network weights)
    alpha_size: int = 25000         # images in the alpha half (trains alpha; criteria validate on it)
    w_lr: float = 0.025
    w_lr_min: float = 0.001
    w_momentum: float = 0.9
    w_nesterov: bool = True
    w_weight_decay: float = 5e-4
    grad_clip: float = 5.0          # max L2 norm of the weight gradient; 0 disables
    a_lr: float = 3e-4
    a_beta1: float = 0.5
    a_beta2: float = 0.999
    a_weight_decay: float = 1e-3
    a_eps: float = 1e-8
    checkpoint_every: int = 1       # keep every k-th checkpoint (plus the last)
    implementation: str = "fast"    # fast or naive supernet forward
    precision: str = "fp32"         # fp32, or bf16: the supernet forward under bf16 autocast (for GPUs)
    hessian_every: int = 0          # log the dominant alpha-Hessian eigenvalue every k-th epoch (0 = never)
    hessian_images: int = 512       # validation images (the first of the alpha half) it is measured on
    extra: dict = field(default_factory=dict)


@dataclass(frozen=True)
class SearchConfig(TrainingConfig, *METHOD_OPTIONS):
    """A complete search configuration: the shared training fields plus every method's options
    (each method owns its options dataclass in ``bench.search.methods``); flat, so ``--set key=value``
    reaches any field."""

    def __post_init__(self) -> None:
        validate(self)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, stored: dict) -> "SearchConfig":
        """A configuration as stored in a run's ``config.json``, renamed fields included."""
        return cls(**{RENAMED.get(k, k): v for k, v in stored.items()})

    def identity(self) -> dict:
        """The fields that identify a run (its id, checkpoint digests), under the names they had
        when run ids were first derived (``RENAMED``): the fields of ``FIRST_FIELDS`` always,
        any other field only while it differs from its default.  So a field or a method added
        later never changes the ids of existing runs or of other methods' runs."""
        legacy = {new: old for old, new in RENAMED.items()}
        out = {}
        for f in fields(self):
            value = getattr(self, f.name)
            name = legacy.get(f.name, f.name)
            if name in FIRST_FIELDS or value != _default(f):
                out[name] = value
        return out

    def digest(self) -> str:
        return hashlib.sha256(json.dumps(self.identity(), sort_keys=True).encode()).hexdigest()

    def replace(self, **changes) -> "SearchConfig":
        return dataclasses.replace(self, **changes)


def _default(f: dataclasses.Field) -> object:
    return f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default


RENAMED = {"tau_start": "gumbel_temperature_start", "tau_decay": "gumbel_temperature_decay",
           "entran_tau": "engine_temperature"}
"""Old field name -> new: old names load from ``config.json`` and work in ``--set`` (with a notice)."""

FIRST_FIELDS = frozenset({
    "method", "order", "step_order", "freeze_alpha", "C", "N", "num_classes", "affine", "track_running_stats",
    "relaxation", "epochs", "batch_size", "weight_size", "alpha_size", "w_lr", "w_lr_min", "w_momentum",
    "w_nesterov", "w_weight_decay", "grad_clip", "a_lr", "a_beta1", "a_beta2", "a_weight_decay", "a_eps",
    "checkpoint_every", "exclude_none", "prune_every", "prune_threshold", "none_threshold", "warmup_epochs",
    "tau_start", "tau_decay", "skip_dropout", "lam", "eoi_variant", "drop_none_last", "engine_cells", "dst",
    "entran_tau", "implementation", "extra"})
"""The fields of the first run ids (old names): they stay in every identity, at any value."""

_CHOICES = {"order": ("first", "second"), "precision": ("fp32", "bf16"),
            "step_order": ("weight-first", "alpha-first"),
            "relaxation": ("softmax", "sigmoid", "identity", "relu", "gumbel"),
            "implementation": ("fast", "naive")}
_POSITIVE = (
    "C",
    "N",
    "num_classes",
    "epochs",
    "batch_size",
    "weight_size",
    "alpha_size",
    "checkpoint_every",
    "hessian_images",
)
_NON_NEGATIVE = (
    "w_lr",
    "w_lr_min",
    "w_weight_decay",
    "grad_clip",
    "a_lr",
    "a_weight_decay",
    "a_eps",
    "w_momentum",
    "hessian_every",
)


SEED_MAX = 2**32 - 1
"""Seeds are numpy/torch generator seeds: integers in [0, 2**32 - 1]."""

NUM_CLASSES = 10
"""The search data is CIFAR-10 (``bench.data``): the supernet's head has 10 outputs."""


def check_seed(seed: object, what: str = "seed") -> int:
    """``seed`` if it is an integer in [0, 2**32 - 1], else a ``UserError`` naming ``what``."""
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= SEED_MAX:
        raise UserError(f"{what} must be an integer from 0 to {SEED_MAX}, got {seed!r}")
    return seed


def field_kind(f: dataclasses.Field) -> str:
    """A config field's type name (int, float, bool, str, dict), whether or not its module
    postpones annotations."""
    return f.type if isinstance(f.type, str) else f.type.__name__


def validate(cfg: SearchConfig) -> None:
    for f in fields(cfg):
        value = getattr(cfg, f.name)
        kind = field_kind(f)
        expected = {"int": int, "float": (int, float), "bool": bool, "str": str, "dict": dict}[kind]
        if isinstance(value, bool) and kind != "bool" or not isinstance(value, expected):
            raise UserError(f"Config field {f.name!r} = {value!r} must be of type {kind}")
        if kind == "float" and not math.isfinite(value):
            raise UserError(f"Config field {f.name!r} = {value!r} must be a finite number")
    if cfg.num_classes != NUM_CLASSES:
        raise UserError(
            f"Config field 'num_classes' = {cfg.num_classes} must be {NUM_CLASSES}: the search "
            f"data is CIFAR-10"
        )
    one_of(cfg, "method", tuple(METHODS))
    for name, allowed in _CHOICES.items():
        one_of(cfg, name, allowed)
    for name in _POSITIVE:
        if getattr(cfg, name) <= 0:
            raise UserError(f"Config field {name!r} = {getattr(cfg, name)!r} must be a positive integer")
    non_negative(cfg, *_NON_NEGATIVE)
    if cfg.weight_size + cfg.alpha_size > 50000:
        raise UserError(
            f"weight_size + alpha_size = {cfg.weight_size + cfg.alpha_size} exceeds the 50,000 CIFAR-10 "
            f"training images"
        )
    if not 0 <= cfg.a_beta1 < 1 or not 0 <= cfg.a_beta2 < 1 or not 0 <= cfg.w_momentum < 1:
        raise UserError("a_beta1, a_beta2 and w_momentum must lie in [0, 1)")
    if cfg.order == "second" and cfg.method != "darts":
        raise UserError(f"order=second (DARTS-V2) is implemented for method darts only, not {cfg.method!r}")
    for options in METHOD_OPTIONS:
        options.check(cfg)
    if cfg.w_lr_min > cfg.w_lr:
        raise UserError(f"w_lr_min ({cfg.w_lr_min}) must not exceed w_lr ({cfg.w_lr})")


PROFILES: dict[str, SearchConfig] = {
    "paper": SearchConfig(),
    "darts-pt": SearchConfig(
        epochs=100, w_nesterov=False, w_weight_decay=3e-4, step_order="alpha-first", checkpoint_every=20
    ),
    "smoke": SearchConfig(C=4, N=1, epochs=3, batch_size=64, weight_size=512, alpha_size=512),
    "cpu": SearchConfig(C=8, N=2, epochs=25, batch_size=64, weight_size=20000, alpha_size=20000),
    "reference": SearchConfig(
        C=8,
        N=1,
        epochs=40,
        batch_size=64,
        weight_size=10000,
        alpha_size=10000,
        track_running_stats=False,
        checkpoint_every=5,
    ),
}


def method_defaults(method: str, base: SearchConfig, profile_name: str) -> dict:
    """Defaults of a method on top of profile ``profile_name``, scaled to ``base``'s size and epoch
    budget (the method's own ``profile_defaults`` in ``bench.search.methods``)."""
    if method not in METHODS:
        raise UserError(f"Unknown method {method!r}; available: {', '.join(METHODS)}")
    return METHODS[method].profile_defaults(base, profile_name)


def profile(name: str) -> SearchConfig:
    if name not in PROFILES:
        raise UserError(f"Unknown profile {name!r}; available: {', '.join(PROFILES)}")
    return PROFILES[name]


def parse_override(text: str, base: SearchConfig) -> tuple[str, object]:
    """``key=value`` -> (key, typed value) using the field's type in ``base``."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    if key in RENAMED:
        print(f"note: --set {key} is deprecated; the field is now {RENAMED[key]}", file=sys.stderr)
        key = RENAMED[key]
    names = {f.name: field_kind(f) for f in fields(base)}
    if not sep or key not in names or key == "extra":
        raise UserError(
            f"Override {text!r} must be key=value with key one of: "
            f"{', '.join(n for n in names if n != 'extra')}"
        )
    kind = names[key]
    raw = raw.strip()
    try:
        if kind == "bool":
            if raw.lower() not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError
            value: object = raw.lower() in ("true", "1", "yes")
        elif kind == "int":
            value = int(raw)
        elif kind == "float":
            value = float(raw)
        else:
            value = raw
    except ValueError:
        raise UserError(f"Override {text!r}: {key} needs a value of type {kind}") from None
    return key, value


def resolve(profile_name: str, overrides: list[str] | None = None, method: str | None = None) -> SearchConfig:
    """A profile, then the method's defaults, then ``key=value`` overrides.

    ``method=M`` among the overrides is the same as ``method``: the method's defaults apply (a
    run filed under ``nap`` is a NAP run); the two may not disagree.  The method's defaults are
    scaled to the run's training recipe (the profile with the overrides of ``TrainingConfig``
    fields: ``N``, ``epochs``, ...), and overrides of the method's own fields win over them.  The
    result is a config for a new run, so the method's ``check_new_run`` applies."""
    base = profile(profile_name)
    changes = dict(parse_override(text, base) for text in overrides or [])
    chosen = changes.pop("method", None)
    if chosen is not None and method is not None and chosen != method:
        raise UserError(f"--method {method} and --set method={chosen} disagree; give the method once")
    method = method or chosen
    if method is not None:
        recipe = {f.name for f in fields(TrainingConfig)}
        sized = base.replace(**{k: v for k, v in changes.items() if k in recipe})
        base = base.replace(method=method, **method_defaults(method, sized, profile_name))
    cfg = base.replace(**changes) if changes else base
    METHODS[cfg.method].check_new_run(cfg)
    return cfg
