"""The one configuration module: every params.yaml section, defined once, with its defaults and checks.

Each section is a frozen dataclass; a field's metadata holds its help text (CLI flags are derived from it,
`add_section_flags`) and its limits (`min`, `above`, `below`, `choices`), which `check_section` applies.
The defaults are the values the committed params.yaml holds (tests/test_config.py fails when they
disagree). The workflow's own settings (model/train/infer) resolve as defaults, then a params file given
with --params (never an implicit ./params.yaml), then CLI flags.

The peer's flat legacy dict (`N`, `gridsize`, `nepochs`, ...) exists here only as a view derived from
this config (`legacy_view`) and saved in the model bundle, never as a second source of truth.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path

from ptychoreg.errors import PtychoError

ACCELERATORS = ("cpu", "cuda", "auto")
LOSSES = ("poisson", "gaussian", "mae")
FIXTURE_STRATEGIES = ("stratified", "first")


def knob(default, help: str = "", **limits):
    """A setting: its default, help text and limits (min / above / below / choices)."""
    factory = isinstance(default, (list, dict))
    return field(**({"default_factory": lambda: type(default)(default)} if factory else {"default": default}),
                 metadata={"help": help, **limits})


class Section:
    """A params.yaml section: `from_params(values)` type-checks and limit-checks a section's mapping."""

    @classmethod
    def from_params(cls, values: dict | None, where: str = "params.yaml"):
        name = next(n for n, c in SECTIONS.items() if c is cls)
        return load_section(name, {name: values}, where)


@dataclass(frozen=True)
class DataConfig(Section):
    canonical: str = knob("data/canonical/ptycho_sim_1087.npz", "the canonical dataset (DVC-tracked)")


@dataclass(frozen=True)
class ProfileConfig(Section):
    expect: dict[str, str | int] = knob({"n": 1087, "h": 64, "w": 64, "layout": "HWN", "dtype": "float64"},
                                        "the seed plan's numbers; the profile stage fails if the canonical file disagrees")


@dataclass(frozen=True)
class FixtureSpec(Section):
    subset_size: int = knob(64, "patterns in the fixture", min=1)
    strategy: str = knob("stratified", "evenly spaced over the scan order; 'first' = the first n",
                         choices=FIXTURE_STRATEGIES)
    output: str = knob("tests/fixtures/pytorch_integration/minimal_dataset_v1.npz", "the fixture file")
    sidecar: str | None = knob(None, "its JSON sidecar; null: beside the output, with .json")
    min_unique_positions: int = knob(2, "the seed plan's floor", min=2)
    min_subset: int = knob(16, "smallest subset accepted", min=1)
    gridsize: int = knob(2, "the fixture must form gridsize^2 groups of overlapping patterns", min=1)
    diffraction_dtype: str = knob("float32", "dtype of the stored patterns", choices=("float32", "float64"))
    complex_dtype: str = knob("complex64", "dtype of the stored object, probe and patches",
                              choices=("complex64", "complex128"))


@dataclass(frozen=True)
class ModelConfig(Section):
    width: int = knob(32, "channels of the first encoder block (the network has about 120 * width^2 weights)", min=1)
    gridsize: int = knob(1, "patterns per group = gridsize^2", choices=(1, 2, 3))
    probe_big: bool = knob(True, "predict the whole N x N patch (true) or only its centre N/2 (the peer's default)")


@dataclass(frozen=True)
class TrainConfig(Section):
    max_epochs: int = knob(30, "training epochs", min=1)
    batch_size: int = knob(16, "groups per optimiser step", min=1)
    learning_rate: float = knob(1e-3, "Adam's (peak) learning rate", above=0)
    lr_schedule: str = knob("constant", "constant, or onecycle (warm-up to learning_rate, then anneal)",
                            choices=("constant", "onecycle"))
    loss: str = knob("poisson", "poisson (NLL in photon counts), gaussian (NLL of amplitudes in count units) or mae (amplitude)",
                      choices=LOSSES)
    n_groups: int | None = knob(None, "groups to train on (images = groups x gridsize^2); null = one per position", min=1)
    neighbours: int = knob(4, "K nearest neighbours a group's members are drawn from", min=1)
    group_sampling: str = knob("random", "random (seeded) or sequential", choices=("random", "sequential"))
    val_fraction: float = knob(0.1, "groups held out to report a validation loss", min=0, below=1)
    seed: int = knob(1234, "the one seed: torch init, shuffling, grouping")
    threads: int = knob(1, "torch intra-op threads (pinned: timings and bitwise results depend on it)", min=1)
    accelerator: str = knob("cpu", "cpu, cuda or auto", choices=ACCELERATORS)


@dataclass(frozen=True)
class InferConfig(Section):
    n_groups: int | None = knob(None, "positions to predict, first in scan order; null = all", min=1)
    gridsize: int | None = knob(1, "1: predict each pattern alone; 2, 3: merge each prediction with its neighbours' "
                                   "(gridsize^2 members); null: the gridsize the model trained with", choices=(1, 2, 3))
    batch_size: int = knob(64, "groups per forward pass", min=1)
    threads: int = knob(1, "torch intra-op threads", min=1)
    accelerator: str = knob("cpu", "cpu, cuda or auto", choices=ACCELERATORS)


@dataclass(frozen=True)
class RegressSettings(Section):
    """The fast regression on the fixture: these override model/train; the rest comes from those sections."""
    repeats: int = knob(5, "timed train + infer runs", min=1)
    max_epochs: int = knob(2, "training epochs", min=1)
    width: int = knob(8, "network width", min=1)
    batch_size: int = knob(16, "training batch size", min=1)
    gridsize: int = knob(1, "patterns per group = gridsize^2", choices=(1, 2, 3))
    n_groups: int = knob(48, "below the fixture's 64, so the regression exercises --n-groups", min=1)
    threads: int = knob(1, "torch threads of every timed run", min=1)


@dataclass(frozen=True)
class SensitivitySettings(Section):
    max_epochs: list[int] = knob([1, 2], "the grid's epochs (the sensitivity matrix stage)", min=1)
    n_images: list[int] = knob([16, 64, 1087], "the grid's pattern counts (groups of one pattern, gridsize 1)", min=1)
    repeats: int = knob(3, "timed runs per cell", min=1)
    width: int = knob(8, "network width", min=1)
    threads: int = knob(1, "torch threads", min=1)


@dataclass(frozen=True)
class QualitySettings(Section):
    """Real training on every canonical pattern (the quality stage); overrides model/train. Two phases:
    single patterns, then groups under the overlap constraint starting from that model."""
    max_epochs: int = knob(34, "training epochs", min=1)
    width: int = knob(16, "network width", min=1)
    gridsize: int = knob(1, "patterns per group = gridsize^2", choices=(1, 2, 3))
    batch_size: int = knob(8, "training batch size", min=1)
    learning_rate: float = knob(3e-3, "peak learning rate", above=0)
    lr_schedule: str = knob("onecycle", "constant or onecycle", choices=("constant", "onecycle"))
    loss: str = knob("gaussian", "training loss (train.loss's choices)", choices=LOSSES)
    refine_gridsize: int = knob(2, "the second phase's gridsize", choices=(1, 2, 3))
    refine_epochs: int = knob(4, "the second phase's epochs, from the first phase's model; 0 = no second phase", min=0)
    refine_learning_rate: float = knob(2e-3, "the second phase's peak learning rate", above=0)
    threads: int = knob(2, "torch threads", min=1)
    min_ssim: float = knob(0.65, "amplitude and phase SSIM must reach this on every machine", min=0, below=1)


@dataclass(frozen=True)
class ReferenceSettings(Section):
    """The classical reference beside the PINN (the reference stage): ePIE, known probe and positions."""
    epochs: int = knob(30, "passes over every position", min=1)
    alpha: float = knob(1.0, "ePIE object update step", above=0)
    seed: int = knob(0, "seeds the order positions are visited in")
    threads: int = knob(1, "torch threads", min=1)


@dataclass(frozen=True)
class DriftSettings(Section):
    """Across machines only machine-normalised runtimes compare; the runtime gate is what fails CI."""
    runtime_rise: float = knob(0.25, "fail when a runtime rises by more than this fraction", above=0)
    quality_drop: float = knob(0.05, "fail when a quality figure drops by more than this (absolute)", above=0)
    runtime_metrics: dict[str, list[str]] = knob(
        {"metrics/regression.json": ["normalised.train.median", "normalised.infer.median", "normalised.total.median"]},
        "metrics file -> dotted keys of the runtimes compared")
    quality_metrics: dict[str, list[str]] = knob(
        {"metrics/quality.json": ["quality.amplitude.correlation", "quality.amplitude.ssim", "quality.phase.correlation",
                                  "quality.phase.ssim", "quality.frc_mean"]},
        "metrics file -> dotted keys of the quality figures compared")
    memory_rise: float = knob(0.1, "fail when a peak memory rises by more than this fraction", above=0)
    memory_metrics: dict[str, list[str]] = knob(
        {"metrics/quality_timing.json": ["peak_rss_mb"]}, "metrics file -> dotted keys of the peak memories compared")


@dataclass(frozen=True)
class GateSettings(Section):
    """Same-machine runtime gate (CI): the working tree against `base`, interleaved."""
    base: str = knob("HEAD~1", "the revision to compare with: the previous commit of main")
    pairs: int = knob(5, "interleaved base/head pairs after one warm-up run of each", min=1)
    max_slowdown: float = knob(0.12, "fail when a median ratio exceeds 1 + this (reports/runtime_gate.md)", above=0)
    max_memory_growth: float = knob(0.05, "fail when the median ratio of train or infer peak RSS exceeds 1 + this "
                                          "(peak RSS varies by a CV of 0.5-1.6 %: metrics/regression.json)", above=0)


# Every params.yaml section, in the file's order.
SECTIONS = {
    "data": DataConfig,
    "profile": ProfileConfig,
    "fixture": FixtureSpec,
    "model": ModelConfig,
    "train": TrainConfig,
    "infer": InferConfig,
    "regress": RegressSettings,
    "sensitivity": SensitivitySettings,
    "quality": QualitySettings,
    "reference": ReferenceSettings,
    "drift": DriftSettings,
    "runtime_gate": GateSettings,
}


@dataclass(frozen=True)
class Config:
    """The workflow's own settings (ptycho-train, ptycho-infer)."""
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    infer: InferConfig = field(default_factory=InferConfig)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


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


def parse_section(cls, section: str, values: dict | None, where: str) -> dict:
    """Type-check a params.yaml section against dataclass `cls`; returns the checked values.

    Unknown keys and wrong types are one-line errors (limits: `check_section`).
    """
    if values is not None and not isinstance(values, dict):
        raise PtychoError(where, f"expected a mapping, got {values!r}", key=section)
    hints = typing.get_type_hints(cls)
    out = {}
    for key, value in (values or {}).items():
        if key not in hints:
            raise PtychoError(where, f"unknown setting (known: {', '.join(sorted(hints))})", key=f"{section}.{key}")
        out[key] = _coerce(where, f"{section}.{key}", value, hints[key])
    return out


def _problem(value, limits: dict) -> str | None:
    if value is None:
        return None
    if isinstance(value, list):
        return next((p for p in (_problem(v, limits) for v in value) if p), None)
    if "choices" in limits and value not in limits["choices"]:
        return f"'{value}' is not one of {', '.join(map(str, limits['choices']))}"
    if "min" in limits and value < limits["min"]:
        return f"must be >= {limits['min']}"
    if "above" in limits and value <= limits["above"]:
        return f"must be > {limits['above']}"
    if "below" in limits and value >= limits["below"]:
        return f"must be < {limits['below']}"
    return None


def check_section(settings, section: str, where: str) -> None:
    """Apply each field's limits (metadata min / above / below / choices): one-line error on the first miss."""
    for f in dataclasses.fields(settings):
        problem = _problem(getattr(settings, f.name), f.metadata)
        if problem:
            raise PtychoError(where, problem, key=f"{section}.{f.name}")


def load_section(name: str, params: dict | None, where: str = "params.yaml", overrides: dict | None = None):
    """Section `name` of `params` (the whole params.yaml dict) with `overrides` (None values ignored) on
    top, type-checked and limit-checked."""
    cls = SECTIONS[name]
    values = parse_section(cls, name, (params or {}).get(name), where)
    given = {k: v for k, v in (overrides or {}).items() if v is not None}
    values.update(parse_section(cls, name, given, "command line"))
    settings = cls(**values)
    check_section(settings, name, where if not given else f"{where} + command line")
    return settings


def build_config(params: dict | None = None, overrides: dict | None = None, where: str = "params") -> Config:
    """Defaults, then `params` (sections model/train/infer), then `overrides` ({section: {key: value}})."""
    return Config(**{name: load_section(name, params, where, (overrides or {}).get(name))
                     for name in ("model", "train", "infer")})


# Flags kept for the peer's scripts: --nepochs, --n_images (same meaning as --n-groups), --lr.
FLAG_ALIASES = {"max_epochs": ["--nepochs"], "n_groups": ["--n_groups", "--n-images", "--n_images"],
                "learning_rate": ["--lr"]}


def add_section_flags(parser: argparse.ArgumentParser, section: str) -> list[str]:
    """One CLI flag per field of `section` (--max-epochs for max_epochs; type, choices and help from the
    field), each defaulting to None (= not given). Returns the field names."""
    cls = SECTIONS[section]
    hints = typing.get_type_hints(cls)
    group = parser.add_argument_group(f"{section} settings (override the params file's {section}:)")
    names = []
    for f in dataclasses.fields(cls):
        flags = [f"--{f.name.replace('_', '-')}", *FLAG_ALIASES.get(f.name, [])]
        kind = next(a for a in typing.get_args(hints[f.name]) or (hints[f.name],) if a is not type(None))
        help_text = f"{f.metadata.get('help', '')} (default {f.default if f.default is not dataclasses.MISSING else '-'})"
        if kind is bool:
            group.add_argument(*flags, dest=f.name, action=argparse.BooleanOptionalAction, default=None, help=help_text)
        else:
            group.add_argument(*flags, dest=f.name, type=kind, choices=f.metadata.get("choices"), help=help_text)
        names.append(f.name)
    return names


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
    unknown = [name for name in data if name not in SECTIONS]
    if unknown:
        raise PtychoError(p, f"unknown section {unknown[0]!r}; the sections are {', '.join(SECTIONS)}", key=unknown[0])
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
        # PtychoPINN knows only these two losses: a gaussian-loss model shows both 0 (the bundle's config
        # names its loss).
        "nll_weight": 1.0 if config.train.loss == "poisson" else 0.0,
        "mae_weight": 1.0 if config.train.loss == "mae" else 0.0,
        "amp_activation": "sigmoid",
        "object.big": config.model.gridsize > 1,
        "probe.big": config.model.probe_big,
        "probe.trainable": False,
        "seed": config.train.seed,
    }
