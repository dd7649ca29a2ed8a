"""The one configuration module: every params.yaml section and every run setting, defined once, with its
help and limits (pydantic models, as pty-chi and PtyRAD validate their options).

A run of the workflow (ptycho-train, ptycho-infer) is one `Config`: model + train + infer. params.yaml
names whole runs as recipes (`recipes.<name>`): what a recipe leaves out takes the default here, and a
recipe may extend another (`extends: <name>`, section by section). A setting resolves as default, then the
recipe given with --params FILE --recipe NAME (never an implicit ./params.yaml), then the CLI's flags,
which are derived from these fields. The other sections configure the harness's stages: they have no
default here, since params.yaml is where the project states them (a missing one is refused by name).

PtychoPINN's flat legacy dict (`N`, `gridsize`, `nepochs`, ...) exists here only as a view derived from
this config (`legacy_view`) and saved in the model bundle, never as a second source of truth.
"""

from __future__ import annotations

import argparse
import os
import reprlib
import types
import typing
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ptychoreg.core.errors import PtychoError

Accelerator = Literal["cpu", "cuda", "auto"]
Loss = Literal["poisson", "gaussian", "mae"]
Gridsize = Literal[1, 2, 3]
Schedule = Literal["constant", "onecycle"]
Positive = Annotated[int, Field(ge=1)]


def brief(value) -> str:
    """repr of a value a user gave, bounded: an error message never renders a whole (or aliased) structure."""
    limits = reprlib.Repr()
    limits.maxstring = limits.maxother = 60
    limits.maxlevel, limits.maxlist, limits.maxdict, limits.maxtuple, limits.maxset = 2, 4, 4, 4, 4
    return limits.repr(value)


def setting(help: str, **limits):
    """A setting without a default: the project states it in params.yaml, the one place it lives."""
    return Field(description=help, **limits)


def knob(default, help: str = "", **limits):
    """A setting: its default, help text and limits (pydantic's ge / gt / lt / min_length)."""
    if isinstance(default, (list, dict)):
        return Field(default_factory=lambda: type(default)(default), description=help, **limits)
    return Field(default, description=help, **limits)


class Section(BaseModel):
    """A params.yaml section: strict types (an int is accepted for a float, nothing else is converted),
    unknown keys refused, frozen."""
    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    @classmethod
    def from_params(cls, values: dict | None, where: str = "params.yaml", section: str | None = None):
        """Validate a section's mapping; any problem is one PtychoError naming `where` and the key."""
        return validated(cls, values, where, section or next((n for n, c in SECTIONS.items() if c is cls), cls.__name__))

    def with_changes(self, where: str, **changes):
        """A copy with `changes` (None = not given) applied and validated."""
        given = {k: v for k, v in changes.items() if v is not None}
        return validated(type(self), {**self.model_dump(), **given}, where, "")


def _problem(error: dict) -> str:
    """Pydantic's first error, in our words."""
    kind, ctx, value = error["type"], error.get("ctx", {}), error.get("input")
    if kind == "extra_forbidden":
        return "unknown setting"
    if kind == "missing":
        return "missing: this setting has no default, the params file states it"
    if kind == "literal_error":
        return f"{brief(value)} is not one of {ctx['expected']}"
    if kind in ("greater_than_equal", "greater_than", "less_than", "less_than_equal"):
        sign = {"greater_than_equal": ">=", "greater_than": ">", "less_than": "<", "less_than_equal": "<="}[kind]
        return f"must be {sign} {next(iter(ctx.values()))}"
    if kind == "too_short":
        return "must not be empty"
    expected = {"int_type": "int", "float_type": "float", "bool_type": "bool", "string_type": "str",
                "list_type": "a list", "dict_type": "a mapping", "model_type": "a mapping"}.get(kind)
    return f"expected {expected}, got {brief(value)}" if expected else error["msg"]


def validated(cls: type[BaseModel], values, where: str, section: str):
    """`cls` from `values`, or one PtychoError: the file, the dotted key, the problem (and, for an unknown
    key, the known ones)."""
    if values is not None and not isinstance(values, dict):
        raise PtychoError(where, f"expected a mapping, got {brief(values)}", key=section or None)
    try:
        return cls.model_validate(values or {})
    except ValidationError as exc:
        error = exc.errors()[0]
        loc = [str(part) if not isinstance(part, int) else f"[{part}]" for part in error["loc"]]
        key = ".".join([section, *loc] if section else loc).replace(".[", "[")
        problem = _problem(error)
        if error["type"] == "extra_forbidden":
            owner = cls
            for part in error["loc"][:-1]:  # the model that refused the key
                owner = typing.get_type_hints(owner)[part]
            problem += f" (known: {', '.join(owner.model_fields)})"
        raise PtychoError(where, problem, key=key) from None


# ---- the workflow's own settings: one run is model + train + infer ---------------------------------------

class ModelConfig(Section):
    width: Positive = knob(32, "channels of the first encoder block (the network has about 120 * width^2 weights)")
    gridsize: Gridsize = knob(1, "patterns per group = gridsize^2")
    probe_big: bool = knob(True, "predict the whole N x N patch (true) or only its centre N/2 (PtychoPINN's default)")
    heads: Literal["separate", "shared"] = knob(
        "separate", "separate: one decoder each for amplitude and phase (PtychoPINN's); shared: one decoder, two outputs")
    upsampling: Literal["nearest", "subpixel"] = knob(
        "nearest", "last doubling of resolution: nearest (upsample, then a double conv at full resolution) or "
                   "subpixel (a conv at half resolution rearranged by PixelShuffle)")


class TrainConfig(Section):
    max_epochs: Positive = knob(30, "training epochs")
    batch_size: Positive = knob(16, "groups per optimiser step")
    learning_rate: float = knob(1e-3, "Adam's (peak) learning rate", gt=0)
    lr_schedule: Schedule = knob("constant", "constant, or onecycle (warm-up to learning_rate, then anneal)")
    loss: Loss = knob("poisson", "poisson (NLL in photon counts), gaussian (NLL of amplitudes in count units) or mae (amplitude)")
    n_groups: Positive | None = knob(None, "groups to train on (images = groups x gridsize^2); null = one per position")
    neighbours: Positive = knob(4, "K nearest neighbours a group's members are drawn from")
    group_sampling: Literal["random", "sequential"] = knob("random", "random (seeded) or sequential")
    val_fraction: float = knob(0.1, "groups held out to report a validation loss", ge=0, lt=1)
    seed: int = knob(1234, "the one seed: torch init, shuffling, grouping", ge=0, le=2**32 - 1)
    threads: Positive = knob(1, "torch intra-op threads (pinned: timings and bitwise results depend on it)")
    accelerator: Accelerator = knob("cpu", "cpu, cuda or auto")


class InferConfig(Section):
    n_groups: Positive | None = knob(None, "positions to predict, first in scan order; null = all")
    gridsize: Gridsize | None = knob(1, "1: predict each pattern alone; 2, 3: merge each prediction with its "
                                        "neighbours' (gridsize^2 members); null: the gridsize the model trained with")
    batch_size: Positive = knob(64, "groups per forward pass")
    threads: Positive = knob(1, "torch intra-op threads")
    accelerator: Accelerator = knob("cpu", "cpu, cuda or auto")


class Config(Section):
    """One whole run of the workflow (ptycho-train, ptycho-infer): what a recipe resolves to."""
    model: ModelConfig = knob(ModelConfig(), "the network")
    train: TrainConfig = knob(TrainConfig(), "its training")
    infer: InferConfig = knob(InferConfig(), "inference and stitching")

    def to_dict(self) -> dict:
        return self.model_dump()


RUN_SECTIONS = ("model", "train", "infer")


# ---- the harness's stages ------------------------------------------------------------------------------

class DataConfig(Section):
    canonical: str = setting("the canonical dataset (DVC-tracked)")


class ProfileConfig(Section):
    expect: dict[str, str | int] = setting("the data contract's numbers; the profile stage fails if the canonical file disagrees")


class FixtureSpec(Section):
    subset_size: Positive = setting("patterns in the fixture")
    strategy: Literal["stratified", "first"] = setting("evenly spaced over the scan order; 'first' = the first n")
    output: str = setting("the fixture file")
    sidecar: str | None = setting("its JSON sidecar; null: beside the output, with .json")
    min_unique_positions: int = setting("the data contract's floor", ge=2)
    min_subset: Positive = setting("smallest subset accepted")
    gridsize: Positive = setting("the fixture must form gridsize^2 groups of overlapping patterns")
    diffraction_dtype: Literal["float32", "float64"] = setting("dtype of the stored patterns")
    complex_dtype: Literal["complex64", "complex128"] = setting("dtype of the stored object, probe and patches")


class RegressSettings(Section):
    """The fast regression on the fixture: the `regression` recipe, timed."""
    repeats: Positive = setting("timed train + infer runs")


class SensitivitySettings(Section):
    """The sensitivity matrix: the `sensitivity` recipe at each epochs x images cell."""
    max_epochs: Annotated[list[Positive], Field(min_length=1)] = setting("the grid's epochs (the sensitivity matrix stage)")
    n_images: Annotated[list[Positive], Field(min_length=1)] = setting("the grid's pattern counts (groups of one pattern)")
    repeats: Positive = setting("timed runs per cell")


class QualitySettings(Section):
    """The quality stage's floor; its training is the recipes quality_pretrain and quality_refine."""
    min_amplitude_ssim: float = setting("the amplitude's SSIM must reach this on every machine", ge=0, lt=1)
    min_phase_ssim: float = setting("the phase's SSIM must reach this on every machine", ge=0, lt=1)
    enforce: bool = setting("fail the stage when a check fails (the floors, beating a flat object); false for budget "
                            "experiments, whose small budgets may score low")

    def floors(self) -> dict[str, float]:
        return {"amplitude": self.min_amplitude_ssim, "phase": self.min_phase_ssim}


class ReferenceSettings(Section):
    """The classical reference beside the PINN (the reference stage): ePIE, known probe and positions."""
    epochs: Positive = setting("passes over every position")
    alpha: float = setting("ePIE object update step", gt=0)
    seed: int = setting("seeds the order positions are visited in", ge=0, le=2**32 - 1)
    threads: Positive = setting("torch threads")


class DriftSettings(Section):
    """Across machines only machine-normalised runtimes compare; the runtime gate is what fails CI."""
    runtime_rise: float = setting("fail when a runtime rises by more than this fraction", gt=0)
    quality_drop: float = setting("fail when a quality figure drops by more than this (absolute)", gt=0)
    runtime_metrics: dict[str, list[str]] = setting("metrics file -> dotted keys of the runtimes compared")
    quality_metrics: dict[str, list[str]] = setting("metrics file -> dotted keys of the quality figures compared")
    memory_rise: float = setting("fail when a peak memory rises by more than this fraction", gt=0)
    memory_metrics: dict[str, list[str]] = setting("metrics file -> dotted keys of the peak memories compared")


class GateSettings(Section):
    """Same-machine runtime gate (CI): the working tree against `base`, interleaved."""
    base: str = setting("the revision to compare with: the previous commit of main")
    pairs: Positive = setting("interleaved base/head pairs after one warm-up run of each")
    max_slowdown: float = setting("fail when a median ratio exceeds 1 + this (reports/runtime_gate.md)", gt=0)
    max_memory_growth: float = setting("fail when the median ratio of train or infer peak RSS exceeds 1 + this", gt=0)


# Every params.yaml section, in the file's order (`recipes` holds the named runs: `resolve_recipe`).
SECTIONS = {
    "data": DataConfig,
    "profile": ProfileConfig,
    "fixture": FixtureSpec,
    "recipes": None,
    "regress": RegressSettings,
    "sensitivity": SensitivitySettings,
    "quality": QualitySettings,
    "reference": ReferenceSettings,
    "drift": DriftSettings,
    "runtime_gate": GateSettings,
}


def load_section(name: str, params: dict | None, where: str = "params.yaml"):
    """Section `name` of `params` (the whole params.yaml dict), validated."""
    return SECTIONS[name].from_params((params or {}).get(name), where, name)


# ---- recipes -------------------------------------------------------------------------------------------

def recipe_names(params: dict | None) -> list[str]:
    return list((params or {}).get("recipes") or {})


def _recipe_values(params: dict, name: str, where: str, seen: tuple = ()) -> dict:
    """Recipe `name`'s sections with what it extends merged under them (section by section)."""
    recipes = params.get("recipes") or {}
    if not isinstance(recipes, dict):
        raise PtychoError(where, f"expected a mapping of recipes, got {brief(recipes)}", key="recipes")
    if name not in recipes:
        raise PtychoError(where, f"no recipe {name!r} (recipes: {', '.join(recipes) or 'none'})", key=f"recipes.{name}")
    if name in seen:
        raise PtychoError(where, f"recipes extend each other in a circle: {' -> '.join(seen + (name,))}", key=f"recipes.{name}")
    own = recipes[name]
    if not isinstance(own, dict):
        raise PtychoError(where, f"a recipe is a mapping of sections ({{}} for every default), got {brief(own)}",
                          key=f"recipes.{name}")
    own = dict(own)
    parent = own.pop("extends", None)
    if parent is None:
        return own
    if not isinstance(parent, str):
        raise PtychoError(where, f"expected a recipe's name, got {brief(parent)}", key=f"recipes.{name}.extends")
    merged = _recipe_values(params, parent, where, seen + (name,))
    for section, values in own.items():
        base = merged.get(section)
        merged[section] = {**base, **values} if isinstance(base, dict) and isinstance(values, dict) else values
    return merged


def resolve_recipe(params: dict | None, name: str | None, where: str = "params.yaml",
                   overrides: dict | None = None) -> Config:
    """Defaults, then recipe `name` of `params` (none: the defaults alone), then `overrides`
    ({section: {key: value}}, None = not given: a CLI's flags), validated."""
    values = _recipe_values(params or {}, name, where) if name else {}
    config = validated(Config, values, where, f"recipes.{name}" if name else "")
    changes = {s: {k: v for k, v in (overrides or {}).get(s, {}).items() if v is not None} for s in RUN_SECTIONS}
    if not any(changes.values()):
        return config
    merged = {s: {**getattr(config, s).model_dump(), **changes[s]} for s in RUN_SECTIONS}
    return validated(Config, merged, f"{where} + command line" if name else "command line", "")


# ---- CLI flags, derived from the fields ------------------------------------------------------------------

# Flags kept for PtychoPINN's scripts: --nepochs, --n_images (same meaning as --n-groups), --lr.
FLAG_ALIASES = {"max_epochs": ["--nepochs"], "n_groups": ["--n_groups", "--n-images", "--n_images"],
                "learning_rate": ["--lr"]}


def _flag_type(annotation):
    """(argparse type, choices) of a field's annotation."""
    options = [a for a in typing.get_args(annotation) if a is not type(None)] \
        if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union else [annotation]
    kind = options[0]
    if typing.get_origin(kind) is Literal:
        choices = typing.get_args(kind)
        return type(choices[0]), list(choices)
    if typing.get_origin(kind) is Annotated:
        kind = typing.get_args(kind)[0]
    return kind, None


def add_section_flags(parser: argparse.ArgumentParser, section: str) -> list[str]:
    """One CLI flag per field of run section `section` (--max-epochs for max_epochs; type, choices and help
    from the field), each defaulting to None (= not given). Returns the field names."""
    cls = typing.get_type_hints(Config)[section]
    group = parser.add_argument_group(f"{section} settings (override the recipe's {section}:)")
    for name, info in cls.model_fields.items():
        flags = [f"--{name.replace('_', '-')}", *FLAG_ALIASES.get(name, [])]
        kind, choices = _flag_type(info.annotation)
        help_text = f"{info.description} (default {info.default})"
        if kind is bool:
            group.add_argument(*flags, dest=name, action=argparse.BooleanOptionalAction, default=None, help=help_text)
        else:
            group.add_argument(*flags, dest=name, type=kind, choices=choices, help=help_text)
    return list(cls.model_fields)


def section_flags(args: argparse.Namespace, sections: tuple[str, ...]) -> dict:
    """The flags `add_section_flags` added, as overrides for `resolve_recipe`."""
    hints = typing.get_type_hints(Config)
    return {s: {name: getattr(args, name) for name in hints[s].model_fields} for s in sections}


# ---- params.yaml ---------------------------------------------------------------------------------------

MAX_PARAMS_BYTES = 1 << 20  # a params file is a page of settings; anything larger is not one


def strict_yaml(text: str, where) -> object:
    """YAML as data, strictly: anchors and aliases refused before anything is built (an alias bomb would
    expand without bound), duplicate keys refused (YAML would keep the last one silently)."""
    import yaml  # only the commands that read params.yaml pay for the import

    # The C loader when PyYAML has it: much faster, and every CLI call reads this file.
    base = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

    class Strict(base):
        def construct_mapping(self, node, deep=False):
            seen = set()
            for key_node, _ in node.value:
                key = self.construct_object(key_node, deep=True)
                if key in seen:
                    raise PtychoError(where, f"duplicate key {brief(key)} at line {key_node.start_mark.line + 1} "
                                             "(YAML would keep the last one silently)")
                seen.add(key)
            return super().construct_mapping(node, deep)

    try:
        for event in yaml.parse(text, Loader=base):
            if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
                raise PtychoError(where, f"anchors and aliases (&, *) are not accepted (line {event.start_mark.line + 1})")
        return yaml.load(text, Loader=Strict)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark else ""
        raise PtychoError(where, f"not valid YAML{at}") from None
    except TypeError:  # a key YAML cannot hash (a mapping or list as a key)
        raise PtychoError(where, "a key is a mapping or a list; keys are names") from None


def read_params(path: str | os.PathLike) -> dict:
    """Load params.yaml as a dict, with one-line errors; every section name must be known, none empty."""
    p = Path(path)
    if not p.is_file():
        raise PtychoError(p, "params file not found")
    if p.stat().st_size > MAX_PARAMS_BYTES:
        raise PtychoError(p, f"{p.stat().st_size:,} bytes: not a params file (at most {MAX_PARAMS_BYTES:,})")
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise PtychoError(p, f"not UTF-8 text (byte {exc.start})") from None
    data = strict_yaml(text, p)
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise PtychoError(p, "top level must be a mapping")
    unknown = [name for name in data if name not in SECTIONS]
    if unknown:
        raise PtychoError(p, f"unknown section {brief(unknown[0])}; the sections are {', '.join(SECTIONS)}",
                          key=str(unknown[0])[:60])
    empty = [name for name, values in data.items() if values is None]
    if empty:
        raise PtychoError(p, "section is empty (null): give its settings or remove it", key=empty[0])
    return data


def legacy_view(config: Config, size: int, nphotons: float, intensity_scale: float, n_groups: int) -> dict:
    """PtychoPINN's flat dict, derived from the config and the data (docs/design/physics-and-model.md,
    "Config and the legacy bridge"). Saved in the bundle."""
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
