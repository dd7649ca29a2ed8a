"""ptychoreg: a physics-informed ptychography workflow in PyTorch and the DVC regression harness that guards it."""

__version__ = "0.1.0"
