"""The mutation catalogue: known bug classes of this field, each a small realistic mistake made by
replacing one function (`Mutant.make(original) -> mutated`). The engine that applies them and the checks
that must catch them: `ptychoreg.harness.mutation`. Add a bug class here; nothing else changes.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np


@dataclass(frozen=True)
class Mutant:
    name: str
    bug_class: str
    what: str  # the mistake, in words
    module: str  # where the replaced function lives
    function: str
    make: Callable[[Callable], Callable]  # original -> mutated


# ---- the curated bug classes ----------------------------------------------------------------------------

def _with_data(change: Callable) -> Callable[[Callable], Callable]:
    """A loader that returns what `change(data)` makes of the validated dataset."""
    from dataclasses import replace

    def make(load_npz):
        def load(path, layout=None):
            data = load_npz(path, layout=layout)
            return replace(data, **change(data))
        return load
    return make


def _stitch_with(change: Callable) -> Callable[[Callable], Callable]:
    def make(stitch):
        def mutated(patches, ycoords, xcoords, canvas_shape, trusted):
            return stitch(*change(patches, ycoords, xcoords), canvas_shape, trusted)
        return mutated
    return make


def _first_patterns(build_fixture):
    """PtychoPINN's fixture bug: the first n patterns paired with the stratified subset's coordinates."""
    def mutated(data, spec):
        fixture = build_fixture(data, spec)
        n = len(fixture.indices)
        for key in ("diffraction", "diff3d"):
            fixture.arrays[key] = data.diffraction[:n].astype(fixture.arrays[key].dtype)
        return fixture
    return mutated


def _flipped_layout(detect_layout):
    def mutated(*args, **kwargs):
        decision = detect_layout(*args, **kwargs)
        if decision.evidence.startswith("ambiguous"):
            flipped = "HWN" if decision.layout == "NHW" else "NHW"
            return type(decision)(flipped, decision.evidence)
        return decision
    return mutated


def _float64_tensors(group_tensors):
    def mutated(diffraction, groups, norm_factor):
        import torch

        tensors = group_tensors(diffraction, groups, norm_factor)
        return type(tensors)(tensors.inputs.to(torch.float64), tensors.measured.to(torch.float64), tensors.offsets)
    return mutated


def _unseeded_batches(batches):
    def mutated(tensors, batch_size, generator=None):
        import torch

        if generator is not None:
            generator = torch.Generator().manual_seed(int.from_bytes(os.urandom(4), "little"))
        return batches(tensors, batch_size, generator)
    return mutated


def _ignores_n_groups(resolve_recipe):
    def mutated(*args, **kwargs):
        config = resolve_recipe(*args, **kwargs)
        return config.model_copy(update={"train": config.train.model_copy(update={"n_groups": None})})
    return mutated


def _amplitude_units(poisson_nll):
    def mutated(predicted, measured, intensity_scale):
        return poisson_nll(predicted, measured, 1.0)  # the intensity scale forgotten: not photon counts
    return mutated


def _untrained(load_bundle):
    def mutated(path, device="cpu"):
        import torch

        bundle = load_bundle(path, device)
        torch.manual_seed(0)
        for layer in bundle.model.modules():
            if hasattr(layer, "reset_parameters"):
                layer.reset_parameters()
        return bundle
    return mutated


def _keeps_activations(predict_patches):
    """Activation logging left on: a forward hook on every layer keeps each training batch's outputs (and
    so their memory) for the whole run. The numbers do not change."""
    kept = []

    def mutated(model, inputs, offsets, window):
        if model.training and not getattr(model, "_logging_activations", False):
            for layer in model.modules():
                if not any(layer.children()):
                    layer.register_forward_hook(lambda m, i, o: kept.append(o) if m.training else None)
            model._logging_activations = True
        return predict_patches(model, inputs, offsets, window)
    return mutated


def _materialised_stitch(stitch):
    """A vectorised stitcher that puts every patch on a complex128 canvas of its own before summing: the
    stack's memory (patterns x object frame x 16 bytes, ~0.9 GB for the canonical scan) for the same
    object."""
    def mutated(patches, ycoords, xcoords, canvas_shape, trusted):
        stack = np.ones((len(patches), *canvas_shape), np.complex128)  # every page written: resident
        result = stitch(patches, ycoords, xcoords, canvas_shape, trusted)
        return result if stack.size else None
    return mutated


def _slower(fraction: float) -> Callable[[Callable], Callable]:
    def make(function):
        def mutated(*args, **kwargs):
            started = time.perf_counter()
            result = function(*args, **kwargs)
            until = time.perf_counter() + fraction * (time.perf_counter() - started)
            while time.perf_counter() < until:
                pass
            return result
        return mutated
    return make


MUTANTS = (
    Mutant("diffraction-float16", "diffraction rounded or quantised",
           "diffraction quantised to float16 when loaded", "ptychoreg.core.contract", "load_npz",
           _with_data(lambda d: {"diffraction": d.diffraction.astype(np.float16).astype(d.diffraction.dtype)})),
    Mutant("diffraction-rounded", "diffraction rounded or quantised",
           "amplitudes rounded to whole numbers when loaded", "ptychoreg.core.contract", "load_npz",
           _with_data(lambda d: {"diffraction": np.round(d.diffraction)})),
    Mutant("first-n-patterns", "patterns paired with the wrong coordinates",
           "fixture takes the first n patterns but the stratified subset's coordinates", "ptychoreg.harness.fixture",
           "build_fixture", lambda f: _first_patterns(f)),
    Mutant("coords-shifted-by-one", "patterns paired with the wrong coordinates",
           "coordinates rolled by one position against the patterns when loaded", "ptychoreg.core.contract", "load_npz",
           _with_data(lambda d: {"xcoords": np.roll(d.xcoords, 1), "ycoords": np.roll(d.ycoords, 1)})),
    Mutant("stitch-mirrored", "stitching mirrored, transposed or off by one pixel",
           "stitcher point-reflects every patch", "ptychoreg.core.geometry", "stitch",
           _stitch_with(lambda p, y, x: (p[:, ::-1, ::-1], y, x))),
    Mutant("stitch-transposed", "stitching mirrored, transposed or off by one pixel",
           "stitcher transposes every patch", "ptychoreg.core.geometry", "stitch",
           _stitch_with(lambda p, y, x: (np.swapaxes(p, 1, 2), y, x))),
    Mutant("stitch-off-by-one", "stitching mirrored, transposed or off by one pixel",
           "stitcher places patches one pixel low", "ptychoreg.core.geometry", "stitch",
           _stitch_with(lambda p, y, x: (p, y + 1, x))),
    Mutant("subpixel-shift-sign", "sub-pixel shift with the wrong sign",
           "Fourier sub-pixel ramp conjugated (shifts the other way)", "ptychoreg.core.geometry", "_fourier_ramp",
           lambda ramp: lambda size, fy, fx: np.conj(ramp(size, fy, fx))),
    Mutant("float64-into-model", "float64 reaching the model",
           "group tensors handed to the network as float64", "ptychoreg.core.dataset", "group_tensors",
           lambda f: _float64_tensors(f)),
    Mutant("unseeded-shuffle", "an unseeded random choice",
           "mini-batch order drawn from an unseeded generator", "ptychoreg.core.dataset", "batches",
           lambda f: _unseeded_batches(f)),
    Mutant("ignores-n-groups", "a setting that never reaches the run",
           "the recipe's (or --n-groups') n_groups never reaches the config", "ptychoreg.core.config", "resolve_recipe",
           lambda f: _ignores_n_groups(f)),
    Mutant("probe-scaled", "the probe mis-scaled or conjugated",
           "probe multiplied by 1.1 when loaded", "ptychoreg.core.contract", "load_npz",
           _with_data(lambda d: {"probe": d.probe * np.asarray(1.1, dtype=d.probe.real.dtype)})),
    Mutant("probe-conjugated", "the probe mis-scaled or conjugated",
           "probe conjugated when loaded", "ptychoreg.core.contract", "load_npz",
           _with_data(lambda d: {"probe": np.conj(d.probe)})),
    Mutant("loss-amplitude-units", "the loss in the wrong units",
           "Poisson NLL computed on amplitudes, not photon counts", "ptychoreg.core.model.physics", "poisson_nll",
           lambda f: _amplitude_units(f)),
    Mutant("layout-flipped", "the ambiguous layout decided wrongly",
           "the N == H == W case decided the other way", "ptychoreg.core.contract", "detect_layout",
           lambda f: _flipped_layout(f)),
    Mutant("untrained-weights", "inference on untrained weights",
           "the bundle's weights replaced by a fresh initialisation at load", "ptychoreg.core.model.bundle", "load_bundle",
           lambda f: _untrained(f)),
    Mutant("slower-30pct", "a 30 % slowdown",
           "training burns 30 % more time", "ptychoreg.core.training", "train_model", _slower(0.3)),
    Mutant("training-keeps-activations", "memory growth in training",
           "a forward hook keeps every layer's output of every training batch", "ptychoreg.core.model.network",
           "predict_patches", lambda f: _keeps_activations(f)),
    Mutant("stitch-materialises-canvases", "memory growth in inference",
           "the stitcher stacks every patch on a canvas of its own before summing", "ptychoreg.core.geometry", "stitch",
           lambda f: _materialised_stitch(f)),
)

NO_MUTANT = "none"  # the control, for `python -m ptychoreg.harness.mutation`
