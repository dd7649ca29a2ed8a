"""ptychoreg: a physics-informed ptychography workflow in PyTorch and the DVC regression harness that guards it."""

from ptychoreg import numerics as _numerics

# Before anything loads numpy or torch: the same bytes on every x86-64 CPU with AVX2 (ptychoreg.numerics).
_numerics.pin()

__version__ = "0.1.0"
