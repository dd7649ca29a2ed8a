"""The memory a command may plan to use: inputs are checked against it before anything is allocated, so an
absurd declared size or scan extent is refused with its figure instead of attempted.

The limit is `PTYCHOREG_MAX_MEMORY_GB` when set, else this machine's physical memory: a property of the
machine running the command, not of the run, so it lives in the environment rather than in params.yaml.
"""

from __future__ import annotations

import os

from ptychoreg.core.errors import PtychoError

MAX_MEMORY_ENV = "PTYCHOREG_MAX_MEMORY_GB"


def memory_limit_bytes() -> int:
    value = os.environ.get(MAX_MEMORY_ENV)
    if value:
        try:
            gb = float(value)
        except ValueError:
            gb = float("nan")
        if not gb > 0 or gb == float("inf"):
            raise PtychoError(None, f"{MAX_MEMORY_ENV}={value[:40]!r} is not a positive number of GB")
        return int(gb * 2**30)
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError):
        return 64 * 2**30


def gib(n_bytes: float) -> str:
    return f"{n_bytes / 2**30:,.3g} GiB" if n_bytes < 2**40 else f"{n_bytes / 2**40:,.3g} TiB"


def check_memory(n_bytes: float, what: str, where=None, key: str | None = None) -> None:
    """Refuse `what` when it would need more than the limit."""
    limit = memory_limit_bytes()
    if n_bytes > limit:
        raise PtychoError(where, f"{what} would need {gib(n_bytes)}, more than the {gib(limit)} this machine allows "
                                 f"(physical memory, or {MAX_MEMORY_ENV})", key=key)
