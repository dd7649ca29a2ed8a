"""ptychoreg: a physics-informed ptychography workflow in PyTorch and the DVC regression harness that guards it.

Layout (each directory is what a DVC stage depends on): `core/` the workflow (contract, config, physics,
network, training, inference), `evaluation/` how a result is judged (quality figures, the ePIE reference),
`harness/` the regression around it, `cli/` thin commands over those, `plots.py` the figures.

Importing any of it changes nothing in the process: each command sets itself up first
(`ptychoreg.core.cli.setup_process`: the pinned numerical environment, before numpy or torch load). A
script or notebook that wants the pipeline's bytes calls it before importing numpy or torch.
"""
