"""The numerics canary: is this machine in the pinned set? Proven by computing, not by CPU flags.

It runs each kind of operation the workflow uses, on a tiny seeded synthetic dataset (64 x 64 patterns,
as the real data), through the workflow's own functions: FFTs forward and backward, the sub-pixel merge of
a group, the network's convolutions forward and backward in every layout, each loss, a fused Adam step
under the one-cycle schedule, short trainings at gridsize 1 and 2, inference and stitching at both, the
quality figures and an ePIE epoch. Each part's bytes are hashed; the machine is in the pinned set when every
hash equals the one recorded in `canary.json` beside this file, and a mismatch names the part that differs.

The cross-vendor check (`cross_vendor`) runs the canary and a short training of every recipe natively and
under qemu-user as an AMD and an Intel CPU model, compares the hashes, and reads qemu's instruction log for
approximate instructions (rsqrt, rcp), whose hardware results differ between CPU models and which qemu
computes exactly: where none ran, the emulated bytes stand for each vendor's real ones.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from ptychoreg.core import numerics
from ptychoreg.core.config import Config, read_params, recipe_names, resolve_recipe
from ptychoreg.core.contract import load_npz
from ptychoreg.core.errors import PtychoError
from ptychoreg.core.inference import reconstruct
from ptychoreg.core.model.bundle import Bundle
from ptychoreg.core.model.network import PtychoNet, prediction_window
from ptychoreg.core.model.physics import forward_amplitude, loss_fn, merge_group
from ptychoreg.core.training import train_model
from ptychoreg.evaluation.quality import quality_report
from ptychoreg.evaluation.reference import epie
from ptychoreg.evaluation.synthetic import synthetic_arrays
from ptychoreg.harness.dvc import last_line

RECORDED = Path(__file__).with_name("canary.json")
SIZE = 64  # the workflow's pattern size: MKL picks its FFT kernels per length (64, and 128 for a group canvas)


def _digest(*arrays) -> str:
    h = hashlib.sha256()
    for a in arrays:
        a = a.detach().cpu().numpy() if isinstance(a, torch.Tensor) else np.asarray(a)
        h.update(str(a.dtype).encode() + str(a.shape).encode())
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()[:16]


def _figures_digest(figures) -> str:
    return hashlib.sha256(json.dumps(figures, sort_keys=True).encode()).hexdigest()[:16]


def _dataset(tmp: Path):
    arrays = synthetic_arrays(n=12, size=SIZE, seed=7, step=6.0)
    arrays["diffraction"] = arrays["diffraction"].astype(np.float32)
    path = tmp / "canary.npz"
    np.savez(path, **arrays)
    return load_npz(path)


def _bundle(result, data, config: Config) -> Bundle:
    """A trained result as the bundle inference reads (what ptycho-train would save)."""
    return Bundle(result.model.eval(), torch.from_numpy(data.probe.astype(np.complex64)), result.norm_factor,
                  result.scale.value, config.to_dict(), {}, {})


def _ops(data) -> dict[str, str]:
    """Single operations, each alone, so a difference names its operation."""
    out = {}
    gen = torch.Generator().manual_seed(0)
    patches = torch.randn(4, SIZE, SIZE, generator=gen, dtype=torch.complex64).requires_grad_()
    probe = torch.from_numpy(data.probe.astype(np.complex64))
    amplitude = forward_amplitude(patches, probe)
    amplitude.square().sum().backward()
    out["fft forward"] = _digest(amplitude)
    out["fft backward"] = _digest(patches.grad)

    measured = torch.from_numpy(data.diffraction[:4])
    for kind in ("poisson", "gaussian", "mae"):
        predicted = (measured * 0.9 + 0.05).requires_grad_()
        loss = loss_fn(kind, predicted, measured, 3.7)
        loss.backward()
        out[f"loss {kind}"] = _digest(loss, predicted.grad)

    torch.manual_seed(0)
    net = PtychoNet(size=SIZE, gridsize=2, width=4)
    window = prediction_window(net)
    group = torch.randn(2, 4, SIZE, SIZE, generator=gen, dtype=torch.complex64).requires_grad_()
    offsets = torch.rand(2, 4, 2, generator=gen) * 12 - 6
    merged = merge_group(group, offsets, window)
    merged.abs().sum().backward()
    out["merge of a group (sub-pixel Fourier shifts)"] = _digest(merged, group.grad)

    inputs = torch.from_numpy(data.diffraction[:2, None]) / float(data.diffraction.max())
    for heads in ("separate", "shared"):
        for upsampling in ("nearest", "subpixel"):
            torch.manual_seed(0)
            net = PtychoNet(size=SIZE, width=4, heads=heads, upsampling=upsampling)
            predicted = net(inputs)
            (predicted.real.square().sum() + predicted.imag.sum()).backward()
            grads = [p.grad for p in net.parameters()]
            out[f"network {heads}/{upsampling} forward"] = _digest(predicted)
            out[f"network {heads}/{upsampling} backward"] = _digest(*grads)

    torch.manual_seed(0)
    weights = torch.nn.Parameter(torch.randn(1000, generator=gen))
    adam = torch.optim.Adam([weights], lr=1e-2, fused=True)
    schedule = torch.optim.lr_scheduler.OneCycleLR(adam, max_lr=1e-2, total_steps=5)
    for i in range(4):
        adam.zero_grad()
        (weights.square() * torch.linspace(0.1, 3.0, 1000)).sum().backward()
        adam.step()
        schedule.step()
    out["adam step, one-cycle rate"] = _digest(weights, torch.tensor(schedule.get_last_lr()))
    return out


# Short trainings through the workflow's own code, one per path a recipe can take.
TRAININGS = {
    "train gridsize 1, separate decoders, poisson, constant rate": dict(
        model={"width": 4}, train={"max_epochs": 2, "batch_size": 4, "n_groups": 8, "threads": 1}),
    "train gridsize 1, shared sub-pixel decoder, gaussian, one-cycle": dict(
        model={"width": 4, "heads": "shared", "upsampling": "subpixel"},
        train={"max_epochs": 2, "batch_size": 4, "n_groups": 8, "loss": "gaussian", "lr_schedule": "onecycle",
               "threads": 2}),
    "train gridsize 2, shared sub-pixel decoder, gaussian": dict(
        model={"width": 4, "gridsize": 2, "heads": "shared", "upsampling": "subpixel"},
        train={"max_epochs": 1, "batch_size": 2, "n_groups": 4, "loss": "gaussian", "threads": 2}),
}


def _workflow(data) -> dict[str, str]:
    out = {}
    quiet: Callable[[str], None] = lambda line: None
    for name, changes in TRAININGS.items():
        config = resolve_recipe(None, None, "canary", overrides=changes)
        result = train_model(config, data, log=quiet)
        out[name] = _digest(*result.model.state_dict().values(), [h["train_loss"] for h in result.history])
    # Inference of the last model (gridsize 2) at both gridsizes, stitched, and scored against the truth.
    bundle = _bundle(result, data, config)
    for gridsize in (1, 2):
        stitched = reconstruct(bundle, data, gridsize=gridsize).stitched
        out[f"inference and stitching, gridsize {gridsize}"] = _digest(stitched.object, stitched.weight)
    out["quality figures (SSIM, FRC, correlation)"] = _figures_digest(
        quality_report(stitched.object, data.object, stitched.mask))
    out["ePIE epoch"] = _digest(epie(data, epochs=1, log=quiet).object)
    return out


def run() -> dict[str, str]:
    """Every part's hash, in a fixed order."""
    with tempfile.TemporaryDirectory(prefix="ptychoreg-canary-") as tmp:
        data = _dataset(Path(tmp))
        return {**_ops(data), **_workflow(data)}


def recorded() -> dict[str, str]:
    return json.loads(RECORDED.read_text())["parts"] if RECORDED.is_file() else {}


def record(hashes: dict[str, str]) -> None:
    RECORDED.write_text(json.dumps({"numerics": numerics.describe(), "parts": hashes}, indent=1) + "\n")


def differing(hashes: dict[str, str], reference: dict[str, str]) -> list[str]:
    """The parts whose hash is not the recorded one (or that either side lacks)."""
    return [part for part in {**reference, **hashes} if hashes.get(part) != reference.get(part)]


@functools.cache
def check() -> tuple[bool, str]:
    """(in the pinned set, one line saying so or naming what differs), once per process. The canary runs
    in a child process with the pinned environment, so the caller's torch state (threads, deterministic
    mode) stays as it was. A caller whose own environment is already outside the set (an opt-out, a late
    pin) is told so at once: the child's hashes would be the pinned environment's, not its own."""
    reasons = numerics.environment_problems()
    if reasons:
        return verdict({}, recorded(), reasons)
    proc = subprocess.run([sys.executable, "-m", "ptychoreg.cli.canary", "--json"], capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, env=numerics.env())
    if proc.returncode != 0:
        reasons.append(f"the canary failed: {last_line(proc)}")
        hashes = {}
    else:
        hashes = json.loads(proc.stdout)
    return verdict(hashes, recorded(), reasons)


def verdict(hashes: dict[str, str], reference: dict[str, str], reasons: list[str]) -> tuple[bool, str]:
    """(in the pinned set, the line that says so or names each differing part and environment problem)."""
    bad = differing(hashes, reference) if hashes else []
    if not bad and not reasons:
        return True, f"in the pinned set: the numerics canary matches ({len(hashes)} parts; {numerics.describe()})"
    why = reasons + ([f"canary parts differ: {', '.join(bad)}"] if bad else [])
    return False, "OUTSIDE the pinned set (" + "; ".join(why) + ")"


# ---- the cross-vendor check ------------------------------------------------------------------------------

QEMU = "qemu-x86_64"
# One CPU model per vendor; qemu 7.2's TCG runs AVX2 and FMA but not AVX-512 (the native run covers that).
QEMU_MODELS = {"AMD": "EPYC-Rome", "Intel": "Haswell-v4"}
# Approximate reciprocal and reciprocal square root, every encoding: their results are each CPU model's own.
APPROXIMATE = re.compile(r"\b(v?(rsqrt|rcp)(14|28)?(ps|ss|pd|sd|ph|sh)|pf(rcp|rsqrt)\w*)\b")


def recipe_hashes(params_path: str | os.PathLike, data_path: str | os.PathLike) -> dict[str, str]:
    """Each recipe of the params file, briefly: two optimiser steps of its model, loss, schedule and
    threads on the data, then its inference of eight positions; the weights and the stitched object hashed."""
    params, data = read_params(params_path), load_npz(data_path)
    out = {}
    for name in recipe_names(params):
        config = resolve_recipe(params, name, str(params_path))
        config = resolve_recipe(params, name, str(params_path), overrides={
            "train": {"max_epochs": 2, "n_groups": config.train.batch_size, "val_fraction": 0.0}})
        result = train_model(config, data, log=lambda line: None)
        bundle = _bundle(result, data, config)
        torch.set_num_threads(config.infer.threads)
        stitched = reconstruct(bundle, data, n_groups=8, gridsize=config.infer.gridsize).stitched
        out[f"recipe {name}"] = _digest(*result.model.state_dict().values(), stitched.object)
    return out


def worker(params_path, data_path) -> dict[str, str]:
    """What one machine (or one emulated CPU model) computes: the canary and every recipe."""
    torch.set_num_threads(1)
    return {**run(), **recipe_hashes(params_path, data_path)}


def _worker_command(params_path, data_path) -> list[str]:
    return [sys.executable, "-m", "ptychoreg.cli.canary", "worker", "--params", str(params_path), "--data", str(data_path)]


def _approximate_instructions(log_path: Path, limit: int = 5) -> list[str]:
    found = []
    with open(log_path, errors="replace") as log:
        for line in log:
            if ("rsqrt" in line or "rcp" in line) and APPROXIMATE.search(line):
                found.append(" ".join(line.split()))
                if len(found) >= limit:
                    break
    return found


def cross_vendor(params_path, data_path, log: Callable[[str], None] = print) -> dict:
    """The canary and a short training per recipe natively and under qemu-user as an AMD and an Intel CPU
    model, at once (one process each). Returns a report: hashes that differ from the native run per model,
    approximate instructions qemu translated, seconds per run, and `ok`."""
    qemu = shutil.which(QEMU)
    if qemu is None:
        raise PtychoError(None, f"{QEMU} not found: install qemu-user (Debian: apt-get install qemu-user)")
    command = _worker_command(params_path, data_path)
    with tempfile.TemporaryDirectory(prefix="ptychoreg-crossvendor-") as tmp:
        runs = {"native": command}
        for vendor, model in QEMU_MODELS.items():
            runs[f"{vendor} ({model})"] = [qemu, "-cpu", model, "-d", "in_asm,nochain", "-D", f"{tmp}/{model}.log", *command]
        started = time.perf_counter()

        def timed(argv):
            begun = time.perf_counter()
            proc = subprocess.run(argv, capture_output=True, text=True, stdin=subprocess.DEVNULL, env=numerics.env())
            return proc, round(time.perf_counter() - begun, 1)

        with ThreadPoolExecutor(len(runs)) as pool:
            done = dict(zip(runs, pool.map(timed, runs.values())))
        results, seconds = {}, {}
        for name, (proc, seconds[name]) in done.items():
            if proc.returncode != 0:
                raise PtychoError(None, f"the canary failed {name}: {last_line(proc)}")
            results[name] = json.loads(proc.stdout)
            log(f"{name}: {len(results[name])} parts in {seconds[name]} s")
        approximate = {f"{vendor} ({model})": _approximate_instructions(Path(tmp) / f"{model}.log")
                       for vendor, model in QEMU_MODELS.items()}
    native = results["native"]
    differ = {name: differing(hashes, native) for name, hashes in results.items() if name != "native"}
    report = {
        "ok": not any(differ.values()) and not any(approximate.values()),
        "parts": len(native),
        "differ_from_native": differ,
        "approximate_instructions": approximate,
        "seconds": seconds,
        "wall_s": round(time.perf_counter() - started, 1),
        "canary_matches_record": not differing({k: v for k, v in native.items() if not k.startswith("recipe ")}, recorded()),
        "hashes": native,
    }
    return report
