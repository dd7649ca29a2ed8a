"""The one typed configuration of the workflow: defaults, then params.yaml, then CLI flags.

The peer's flat legacy dict (`N`, `gridsize`, `nepochs`, ...) exists here only as a view derived from
this config (`legacy_view`) and saved in the model bundle, never as a second source of truth.
"""

from __future__ import annotations

import dataclasses
import os
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path

from ptychoreg.errors import PtychoError

ACCELERATORS = ("cpu", "cuda", "auto")


@dataclass(frozen=True)
class ModelConfig:
    width: int = 32  # channels of the first encoder block; the network has about 120 * width^2 weights
    gridsize: int = 1  # patterns per group = gridsize^2
    probe_big: bool = True  # predict the whole N x N patch (True) or only its centre N/2 (the peer's default)


@dataclass(frozen=True)
class TrainConfig:
    max_epochs: int = 30
    batch_size: int = 16
    learning_rate: float = 1e-3
    loss: str = "poisson"  # "poisson" (NLL in photon counts) or "mae" (amplitude)
    n_groups: int | None = None  # groups to train on (images = groups x gridsize^2); None = one per position
    neighbours: int = 4  # K nearest neighbours a group's members are drawn from
    group_sampling: str = "random"  # "random" (seeded) or "sequential"
    val_fraction: float = 0.1  # groups held out to report a validation loss
    seed: int = 1234  # the one seed: torch init, shuffling, grouping
    threads: int = 1  # torch intra-op threads (pinned: timings and bitwise results depend on it)
    accelerator: str = "cpu"  # "cpu", "cuda" or "auto"


@dataclass(frozen=True)
class InferConfig:
    n_groups: int | None = None  # positions to predict, in scan order; None = all
    batch_size: int = 64
    threads: int = 1
    accelerator: str = "cpu"


@dataclass(frozen=True)
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    infer: InferConfig = field(default_factory=InferConfig)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


_CHOICES = {
    ("train", "loss"): ("poisson", "mae"),
    ("train", "group_sampling"): ("random", "sequential"),
    ("train", "accelerator"): ACCELERATORS,
    ("infer", "accelerator"): ACCELERATORS,
}


def _coerce(where: str, key: str, value, annotation):
    """Check one value against its field type; ints are accepted where floats are expected."""
    if typing.get_origin(annotation) is list:
        (item,) = typing.get_args(annotation)
        if not isinstance(value, list) or not value:
            raise PtychoError(where, f"expected a non-empty list, got {value!r}", key=key)
        return [_coerce(where, key, v, item) for v in value]
    if typing.get_origin(annotation) is dict:
        key_type, item = typing.get_args(annotation)
        if not isinstance(value, dict):
            raise PtychoError(where, f"expected a mapping, got {value!r}", key=key)
        return {_coerce(where, key, k, key_type): _coerce(where, f"{key}.{k}", v, item) for k, v in value.items()}
    allowed = typing.get_args(annotation) if isinstance(annotation, types.UnionType) else (annotation,)
    if value is None and type(None) in allowed:
        return None
    if float in allowed and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if int in allowed and isinstance(value, int) and not isinstance(value, bool):
        return value
    if str in allowed and isinstance(value, str):
        return value
    if bool in allowed and isinstance(value, bool):
        return value
    names = " or ".join("null" if a is type(None) else a.__name__ for a in allowed)
    raise PtychoError(where, f"expected {names}, got {value!r}", key=key)


def parse_section(cls, section: str, values: dict | None, where: str, choices: dict | None = None) -> dict:
    """Type-check a params.yaml section against dataclass `cls`; returns the checked values.

    Unknown keys, wrong types and values outside `choices` ({field: allowed}) are one-line errors.
    """
    if values is not None and not isinstance(values, dict):
        raise PtychoError(where, f"expected a mapping, got {values!r}", key=section)
    hints = typing.get_type_hints(cls)
    out = {}
    for key, value in (values or {}).items():
        if key not in hints:
            raise PtychoError(where, f"unknown setting (known: {', '.join(sorted(hints))})", key=f"{section}.{key}")
        out[key] = _coerce(where, f"{section}.{key}", value, hints[key])
        allowed = (choices or {}).get(key)
        if allowed and out[key] not in allowed:
            raise PtychoError(where, f"'{out[key]}' is not one of {', '.join(allowed)}", key=f"{section}.{key}")
    return out


def build_config(params: dict | None = None, overrides: dict | None = None, where: str = "params") -> Config:
    """Defaults, then `params` (sections model/train/infer), then `overrides` ({section: {key: value}})."""
    merged = {}
    for name, cls in typing.get_type_hints(Config).items():
        choices = {k: v for (s, k), v in _CHOICES.items() if s == name}
        values = parse_section(cls, name, (params or {}).get(name), where, choices)
        cli = {k: v for k, v in ((overrides or {}).get(name) or {}).items() if v is not None}
        values.update(parse_section(cls, name, cli, "command line", choices))
        merged[name] = cls(**values)
    config = Config(**merged)
    _validate(config, where)
    return config


def _validate(config: Config, where: str) -> None:
    checks = [
        (config.model.width >= 1, "model.width", "must be >= 1"),
        (config.model.gridsize in (1, 2, 3), "model.gridsize", "must be 1, 2 or 3"),
        (config.train.max_epochs >= 1, "train.max_epochs", "must be >= 1"),
        (config.train.batch_size >= 1, "train.batch_size", "must be >= 1"),
        (config.train.learning_rate > 0, "train.learning_rate", "must be > 0"),
        (config.train.n_groups is None or config.train.n_groups >= 1, "train.n_groups", "must be >= 1"),
        (0 <= config.train.val_fraction < 1, "train.val_fraction", "must lie in [0, 1)"),
        (config.train.threads >= 1, "train.threads", "must be >= 1"),
        (config.infer.n_groups is None or config.infer.n_groups >= 1, "infer.n_groups", "must be >= 1"),
        (config.infer.batch_size >= 1, "infer.batch_size", "must be >= 1"),
        (config.infer.threads >= 1, "infer.threads", "must be >= 1"),
    ]
    for ok, key, problem in checks:
        if not ok:
            raise PtychoError(where, problem, key=key)


def read_params(path: str | os.PathLike) -> dict:
    """Load params.yaml as a dict, with one-line errors."""
    import yaml  # only the commands that read params.yaml pay for the import

    p = Path(path)
    if not p.is_file():
        raise PtychoError(p, "params file not found")
    try:
        # The C loader when PyYAML has it: ~10x faster, and every CLI call reads this file.
        data = yaml.load(p.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark else ""
        raise PtychoError(p, f"not valid YAML{at}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise PtychoError(p, "top level must be a mapping")
    return data


def legacy_view(config: Config, size: int, nphotons: float, intensity_scale: float, n_groups: int) -> dict:
    """The peer's flat dict, derived from the config and the data (CONFIG-001). Saved in the bundle."""
    channels = config.model.gridsize ** 2
    return {
        "N": size,
        "gridsize": config.model.gridsize,
        "n_filters_scale": config.model.width,
        "nepochs": config.train.max_epochs,
        "batch_size": config.train.batch_size,
        "learning_rate": config.train.learning_rate,
        "n_groups": n_groups,
        "n_images": n_groups * channels,
        "K": config.train.neighbours,
        "sequential_sampling": config.train.group_sampling == "sequential",
        "nphotons": nphotons,
        "intensity_scale": intensity_scale,
        "intensity_scale.trainable": False,
        "nll_weight": 1.0 if config.train.loss == "poisson" else 0.0,
        "mae_weight": 1.0 if config.train.loss == "mae" else 0.0,
        "amp_activation": "sigmoid",
        "object.big": config.model.gridsize > 1,
        "probe.big": config.model.probe_big,
        "probe.trainable": False,
        "seed": config.train.seed,
    }
