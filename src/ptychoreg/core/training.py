"""Training: self-supervised through the physics (no ground truth is used), deterministic on CPU."""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from ptychoreg.core.config import Config, legacy_view
from ptychoreg.core.contract import PtychoData
from ptychoreg.core.dataset import GroupTensors, batches, group_tensors, intensity_scale, normalisation_factor, IntensityScale
from ptychoreg.core.errors import PtychoError
from ptychoreg.core.fileio import file_digest, path_from, write_json
from ptychoreg.core.limits import check_memory
from ptychoreg.core.grouping import make_groups
from ptychoreg.core.model.bundle import load_bundle, save_bundle
from ptychoreg.core.model.network import PtychoNet, predict_patches, prediction_window
from ptychoreg.core.model.physics import forward_amplitude, loss_fn


def select_device(accelerator: str) -> torch.device:
    if accelerator == "cpu":
        return torch.device("cpu")
    available = torch.cuda.is_available()
    if accelerator == "cuda" and not available:
        raise PtychoError(None, "--accelerator cuda: no CUDA device is available (use cpu or auto)")
    return torch.device("cuda" if available else "cpu")


def configure_runtime(seed: int, threads: int, device: torch.device, deterministic: bool = True) -> None:
    """Seed torch, pin its threads, and (for training) demand deterministic kernels, strict on CPU.

    Inference passes deterministic=False: its forward pass uses no kernel with a nondeterministic CPU
    variant, and the flag's public API imports the torch compiler stack (seconds of start-up per process).
    The regression's repeat-identity check holds inference to the same bytes on every run."""
    torch.manual_seed(seed)
    torch.set_num_threads(threads)
    if device.type == "cuda":
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    if deterministic:
        # Some CUDA kernels (nearest-upsample backward) have no deterministic version: warn there, not fail.
        torch.use_deterministic_algorithms(True, warn_only=device.type == "cuda")
        # Deterministic mode also fills every new tensor with NaN, a debugging aid that costs every
        # training step; the weights are the same bit for bit without it. A kernel reading unwritten
        # memory would still show, as output bytes that differ between the regression's repeats.
        torch.utils.deterministic.fill_uninitialized_memory = False


@dataclass
class TrainResult:
    model: PtychoNet
    history: list[dict]
    norm_factor: float
    scale: IntensityScale
    legacy: dict
    n_groups: int
    device: str
    init_model: dict | None = None  # the bundle training started from: path and sha256
    epoch_seconds: list[float] | None = None  # wall seconds per epoch: timings, kept out of history.json


def _mean_loss(model, tensors: GroupTensors, probe, window, config: Config, scale: float, batch_size: int) -> float:
    model.eval()
    total = 0.0
    with torch.inference_mode():
        for batch in batches(tensors, batch_size):
            amplitude = forward_amplitude(predict_patches(model, batch.inputs, batch.offsets, window), probe)
            total += loss_fn(config.train.loss, amplitude, batch.measured, scale).item() * len(batch)
    return total / len(tensors)


def check_trainable(config: Config, data: PtychoData) -> int:
    """Refuse, before any allocation, data this run cannot train on; return the pattern size."""
    h, w = data.frame_shape
    if h != w or h % 8 or h < 8:
        raise PtychoError(data.path, f"patterns of {h}x{w}: the network takes square patterns whose side is a "
                                     "multiple of 8", key="diffraction")
    if data.n < 2:
        raise PtychoError(data.path, f"{data.n} pattern: training needs at least 2", key="diffraction")
    channels = config.model.gridsize ** 2
    groups = min(config.train.n_groups or data.n, data.n)
    # The group tensors (inputs, measured amplitudes, float32) and a batch's activations (~24 maps of
    # `width` channels per pattern, forward and backward).
    need = groups * channels * h * w * 4 * 3 + config.train.batch_size * channels * h * w * 4 * config.model.width * 24
    check_memory(need, f"training {groups} groups of {channels} {h}x{w} patterns at width {config.model.width}",
                 where=data.path)
    return h


def train_model(config: Config, data: PtychoData, log: Callable[[str], None] = print,
                init_model: str | Path | None = None) -> TrainResult:
    """Train a network on `data`. `init_model`: a bundle whose weights (the same architecture, any
    gridsize) replace the seeded initialisation."""
    device = select_device(config.train.accelerator)
    configure_runtime(config.train.seed, config.train.threads, device)
    size = check_trainable(config, data)

    try:
        groups = make_groups(
            data.ycoords, data.xcoords, config.model.gridsize, config.train.n_groups,
            neighbours=config.train.neighbours, sampling=config.train.group_sampling,
            seed=config.train.seed, max_offset=size / 2,
        )
    except PtychoError as exc:  # name the file the positions came from
        raise PtychoError(exc.where or data.path, exc.problem, key=exc.key or "xcoords/ycoords") from None
    norm_factor = normalisation_factor(data.diffraction)
    scale = intensity_scale(data)
    tensors = group_tensors(data.diffraction, groups, norm_factor)

    generator = torch.Generator().manual_seed(config.train.seed)
    order = torch.randperm(len(tensors), generator=generator)
    n_val = int(len(tensors) * config.train.val_fraction)
    train_set, val_set = tensors.subset(order[n_val:]).to(device), tensors.subset(order[:n_val]).to(device)

    model = PtychoNet(size=size, **config.model.model_dump())
    if init_model is not None:
        _start_from(model, init_model)
    model = model.to(device)
    probe = torch.from_numpy(data.probe.astype(np.complex64)).to(device)
    window = prediction_window(model).to(device)
    # Fused: ATen's kernel takes the square root itself, correctly rounded; the default path hands it to
    # MKL's vector math, whose rsqrtps approximation differs between CPU vendors (core/numerics.py).
    optimiser = torch.optim.Adam(model.parameters(), lr=config.train.learning_rate, fused=True)
    scheduler = None
    if config.train.lr_schedule == "onecycle":
        # Warm up to learning_rate over the first 30 % of the steps, then anneal to ~0 (Smith & Topin 2019).
        steps = config.train.max_epochs * math.ceil(len(train_set) / config.train.batch_size)
        scheduler = torch.optim.lr_scheduler.OneCycleLR(optimiser, max_lr=config.train.learning_rate, total_steps=steps)
    log(
        f"training on {data.path}: {groups.n_groups} groups of {groups.channels} ({len(train_set)} train, "
        f"{len(val_set)} validation), {sum(p.numel() for p in model.parameters()):,} weights, "
        f"loss {config.train.loss}, intensity scale {scale.value:.4g} ({scale.source}), device {device}"
        + (f", starting from {init_model}" if init_model is not None else "")
    )

    history, epoch_seconds = [], []
    for epoch in range(1, config.train.max_epochs + 1):
        started = time.perf_counter()
        model.train()
        total = 0.0
        for batch in batches(train_set, config.train.batch_size, generator):
            amplitude = forward_amplitude(predict_patches(model, batch.inputs, batch.offsets, window), probe)
            loss = loss_fn(config.train.loss, amplitude, batch.measured, scale.value)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            if scheduler is not None:
                scheduler.step()
            total += loss.item() * len(batch)
        train_loss = total / len(train_set)
        if not math.isfinite(train_loss):
            raise PtychoError(data.path, f"training diverged: loss {train_loss} at epoch {epoch}")
        val_loss = _mean_loss(model, val_set, probe, window, config, scale.value, config.train.batch_size) if n_val else None
        seconds = time.perf_counter() - started
        history.append({"epoch": epoch, "train_loss": train_loss, "val_loss": val_loss})
        epoch_seconds.append(seconds)
        val_text = f"  val {val_loss:.5g}" if val_loss is not None else ""
        log(f"epoch {epoch:>3}/{config.train.max_epochs}  loss {train_loss:.5g}{val_text}  ({seconds:.2f} s)")

    legacy = legacy_view(config, size, scale.nphotons, scale.value, groups.n_groups)
    return TrainResult(model.cpu(), history, norm_factor, scale, legacy, groups.n_groups, str(device),
                       None if init_model is None else _provenance(init_model), epoch_seconds)


def _provenance(init_model: str | Path) -> dict:
    # The sha256 identifies the starting weights wherever the file moves (the quality stage's moves).
    return {"path": str(init_model), "sha256": file_digest(init_model, "sha256")}


def _start_from(model: PtychoNet, init_model: str | Path) -> None:
    init = load_bundle(init_model).model
    # The weights do not depend on the gridsize (one network per member), so only it may differ.
    ours, theirs = ({k: v for k, v in net.architecture().items() if k != "gridsize"} for net in (model, init))
    if ours != theirs:
        differ = ", ".join(f"{k} {theirs[k]!r} (this run: {ours[k]!r})" for k in ours if ours[k] != theirs[k])
        raise PtychoError(init_model, f"initial model's architecture differs: {differ}", key="architecture")
    model.load_state_dict(init.state_dict())


def save_training(out: Path, result: TrainResult, config: Config, data: PtychoData, seen_from: Path | None = None) -> None:
    """Write the model bundle (model.pt) and the loss history (history.json) into `out`; paths they record
    are seen from `seen_from`, the folder they will live in when `out` is a staging folder."""
    init = None if result.init_model is None else {**result.init_model,
                                                   "path": path_from(seen_from or out, result.init_model["path"])}
    save_bundle(
        out / "model.pt", result.model, data.probe, config=config.to_dict(), legacy=result.legacy,
        norm_factor=result.norm_factor, intensity_scale=result.scale.value,
        extra={"training": {"data": data.path, "n_groups": result.n_groups, "device": result.device,
                            "intensity_scale_source": result.scale.source, "init_model": init}},
    )
    write_json(out / "history.json", {"loss": config.train.loss, "epochs": result.history})


def train_to(out: Path, config: Config, data: PtychoData, log: Callable[[str], None] = print,
             init_model: str | Path | None = None, seen_from: Path | None = None) -> TrainResult:
    """The whole of ptycho-train as a library call: train `config` on `data` (from `init_model`'s weights
    when given) and write model.pt and history.json into `out` (a staging folder for `seen_from`)."""
    result = train_model(config, data, log=log, init_model=init_model)
    save_training(Path(out), result, config, data, seen_from)
    return result
