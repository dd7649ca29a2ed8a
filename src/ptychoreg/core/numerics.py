"""The pinned numerical environment: one place for what makes a run's bytes the same on any x86-64 CPU
with AVX2 and FMA (Intel or AMD, with or without AVX-512), for the same commit and requirements.lock.

Every library that computes for us picks its kernels per CPU at run time: kernels of another vector width
sum in another order, and a vendor's own code path may use approximate instructions (`rsqrtps`, `rcpps`)
whose results differ between CPU models. Each library is therefore held to a path every such CPU runs
the same way:

- MKL (torch's FFTs, BLAS and vector math): conditional numerical reproducibility in its `COMPATIBLE`
  branch, the one branch MKL honours on Intel and AMD alike (its `AVX2` branch applies on Intel CPUs
  only), `STRICT` so the result does not depend on memory alignment either;
- oneDNN (torch's convolutions): AVX2 kernels only;
- ATen (torch's element-wise kernels and reductions): the AVX2 build of each kernel;
- numpy (stitching, quality figures): its x86-64-v3 (AVX2 + FMA) kernels, AVX-512 targets off.

MKL's vector math computes a square root with `rsqrtps` and a Newton step in that branch, so the
workflow keeps square roots out of it: Adam runs fused (`torch.optim.Adam(fused=True)`, ATen's own
correctly rounded root). Whether a machine really computes the pinned bytes is not read from its CPU
flags: `ptycho-canary` computes it. Thread counts are part of each command's settings
(`threads` in params.yaml), never the machine's core count, and pinned by the commands themselves. The
variables are read when each library loads, so every entry point sets them first
(`ptychoreg.core.cli.setup_process`, before numpy or torch load): every CLI, stage, harness subprocess
and test inherits them.

Set `PTYCHOREG_NUMERICS=native` to run with each library's own choice (the golden-spread stage measures
those code paths on purpose); the process is then outside the pinned set.
"""

from __future__ import annotations

import os
import sys

OPT_OUT = "PTYCHOREG_NUMERICS"  # "native": no pinning
PINNED_ISA = "AVX2"

PINNED_ENV = {
    "MKL_CBWR": "COMPATIBLE,STRICT",
    "ONEDNN_MAX_CPU_ISA": "AVX2",
    "ATEN_CPU_CAPABILITY": "avx2",
    "NPY_DISABLE_CPU_FEATURES": "X86_V4 AVX512_ICL AVX512_SPR",
}

# Not numerics (the bytes do not depend on it), but read by the same libraries when they load: OpenMP
# threads sleep at a barrier instead of spinning, so a busy neighbour costs time in proportion to the CPU it
# takes (harness/contention.py measures why and what it costs). Set only where the user has not chosen.
THREAD_ENV = {"OMP_WAIT_POLICY": "PASSIVE"}

_loaded_before_pin: list[str] = []


def native_requested(environ=os.environ) -> bool:
    return environ.get(OPT_OUT, "").lower() == "native"


def pin() -> None:
    """Set the pinned variables in this process's environment (inherited by its children), unless opted
    out. Overrides values already set: a stray MKL_CBWR must not change the bytes silently. The thread wait
    policy is set either way, unless already chosen."""
    for key, value in THREAD_ENV.items():
        os.environ.setdefault(key, value)
    if native_requested():
        return
    _loaded_before_pin[:] = [m for m in ("numpy", "torch") if m in sys.modules
                             and any(os.environ.get(k) != v for k, v in PINNED_ENV.items())]
    os.environ.update(PINNED_ENV)


def env(native: bool = False, extra: dict | None = None) -> dict:
    """A child process's environment: this one's, pinned (or, with `native`, with the pins removed and the
    opt-out set), plus `extra`."""
    out = {**THREAD_ENV, **os.environ}
    if native:
        for key in PINNED_ENV:
            out.pop(key, None)
        out[OPT_OUT] = "native"
    else:
        out.pop(OPT_OUT, None)
        out.update(PINNED_ENV)
    out.update(extra or {})
    return out


def environment_problems() -> list[str]:
    """Why this process cannot be in the pinned set whatever its CPU computes: the opt-out, a pin
    overridden or set too late. Whether the CPU computes the pinned bytes is the canary's to say
    (`ptycho-canary`)."""
    if native_requested():
        return [f"{OPT_OUT}=native: each library chooses its own kernels"]
    reasons = [f"{key}={os.environ.get(key)!r}, pinned {value!r}" for key, value in PINNED_ENV.items()
               if os.environ.get(key) != value]
    if _loaded_before_pin:
        reasons.append(f"{' and '.join(_loaded_before_pin)} loaded before ptychoreg pinned the environment")
    torch = sys.modules.get("torch")
    if torch is not None and (capability := torch.backends.cpu.get_cpu_capability()) != PINNED_ISA:
        reasons.append(f"torch runs its {capability} kernels, pinned {PINNED_ISA}")
    return reasons


def describe() -> str:
    """One line: the numerical environment of this process (recorded in model bundles)."""
    return "native" if native_requested() else f"pinned {PINNED_ISA} ({', '.join(f'{k}={v}' for k, v in PINNED_ENV.items())})"
