"""The pinned numerical environment: one place for what makes a run's bytes the same on any x86-64 CPU
with AVX2 (Intel or AMD, with or without AVX-512), for the same commit and requirements.lock.

Every library that computes for us picks its kernels per CPU at run time, and kernels of another vector
width sum in another order. Each is capped at the AVX2 level, which every such CPU runs the same way:

- MKL (torch's FFTs and BLAS): conditional numerical reproducibility, AVX2 code path, `STRICT` so the
  result does not depend on memory alignment either;
- oneDNN (torch's convolutions): AVX2 kernels only;
- ATen (torch's element-wise kernels and reductions): the AVX2 build of each kernel;
- numpy (stitching, quality figures): its x86-64-v3 (AVX2 + FMA) kernels, AVX-512 targets off.

Thread counts are part of each command's settings (`threads` in params.yaml), never the machine's core
count, and pinned by the commands themselves. Measured cost: none beyond noise (README, "Outputs that
travel"). The variables are read when each library loads, so they are set here, on `import ptychoreg`,
before numpy or torch load: every CLI, stage, harness subprocess and test inherits them.

Set `PTYCHOREG_NUMERICS=native` to run with each library's own choice (the golden-spread stage measures
those code paths on purpose); `status()` then says the process is outside the pinned set.
"""

from __future__ import annotations

import os
import platform
import sys

OPT_OUT = "PTYCHOREG_NUMERICS"  # "native": no pinning
PINNED_ISA = "AVX2"

PINNED_ENV = {
    "MKL_CBWR": "AVX2,STRICT",
    "ONEDNN_MAX_CPU_ISA": "AVX2",
    "ATEN_CPU_CAPABILITY": "avx2",
    "NPY_DISABLE_CPU_FEATURES": "X86_V4 AVX512_ICL AVX512_SPR",
}

# What a CPU needs to run the pinned kernels (numpy's names for the x86-64-v3 level).
_REQUIRED_FEATURES = ("AVX2", "FMA3")

_loaded_before_pin: list[str] = []


def native_requested(environ=os.environ) -> bool:
    return environ.get(OPT_OUT, "").lower() == "native"


def pin() -> None:
    """Set the pinned variables in this process's environment (inherited by its children), unless opted
    out. Overrides values already set: a stray MKL_CBWR must not change the bytes silently."""
    if native_requested():
        return
    _loaded_before_pin[:] = [m for m in ("numpy", "torch") if m in sys.modules
                             and any(os.environ.get(k) != v for k, v in PINNED_ENV.items())]
    os.environ.update(PINNED_ENV)


def env(native: bool = False, extra: dict | None = None) -> dict:
    """A child process's environment: this one's, pinned (or, with `native`, with the pins removed and the
    opt-out set), plus `extra`."""
    out = dict(os.environ)
    if native:
        for key in PINNED_ENV:
            out.pop(key, None)
        out[OPT_OUT] = "native"
    else:
        out.pop(OPT_OUT, None)
        out.update(PINNED_ENV)
    out.update(extra or {})
    return out


def outside_pinned_set() -> list[str]:
    """Why this process's numbers may differ from a pinned machine's bytes; empty when they cannot."""
    reasons = []
    if native_requested():
        reasons.append(f"{OPT_OUT}=native: each library chooses its own kernels")
    if platform.machine() not in ("x86_64", "AMD64"):
        reasons.append(f"CPU architecture {platform.machine()}, not x86-64")
    else:
        missing = [f for f in _REQUIRED_FEATURES if not _cpu_features().get(f, False)]
        if missing:
            reasons.append(f"the CPU lacks {', '.join(missing)}")
    for key, value in PINNED_ENV.items():
        if os.environ.get(key) != value and not native_requested():
            reasons.append(f"{key}={os.environ.get(key)!r}, pinned {value!r}")
    if _loaded_before_pin:
        reasons.append(f"{' and '.join(_loaded_before_pin)} loaded before ptychoreg pinned the environment")
    torch = sys.modules.get("torch")
    if torch is not None and not native_requested():
        capability = torch.backends.cpu.get_cpu_capability()
        if capability != PINNED_ISA:
            reasons.append(f"torch runs its {capability} kernels, pinned {PINNED_ISA}")
    return reasons


def describe() -> str:
    """One line: the numerical environment of this process (recorded in model bundles)."""
    return "native" if native_requested() else f"pinned {PINNED_ISA} ({', '.join(f'{k}={v}' for k, v in PINNED_ENV.items())})"


def _cpu_features() -> dict:
    # numpy's own detection (cpuid), the same on every OS; the pinned kernels need these.
    from numpy._core._multiarray_umath import __cpu_features__

    return dict(__cpu_features__)


if __name__ == "__main__":
    reasons = outside_pinned_set()
    print(describe())
    print("this machine is in the pinned set: outputs match dvc.lock byte for byte" if not reasons else
          "OUTSIDE the pinned set (" + "; ".join(reasons) + "): outputs differ from dvc.lock; golden values still apply")
    sys.exit(1 if reasons else 0)
