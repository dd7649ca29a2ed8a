"""ptychoreg: a physics-informed ptychography workflow in PyTorch and the DVC regression harness that guards it.

Layout (each directory is what a DVC stage depends on): `core/` the workflow (contract, config, physics,
network, training, inference), `evaluation/` how a result is judged (quality figures, the ePIE reference),
`harness/` the regression around it, `cli/` thin commands over those, `plots.py` the figures.
"""

from ptychoreg.core import numerics as _numerics

# Before anything loads numpy or torch: the same bytes on every x86-64 CPU with AVX2 (ptychoreg.core.numerics).
_numerics.pin()
