"""The field's file formats beside ours: `ptychodus`, Ptychodus's NPZ product file (`ptycho-export` writes a
reconstruction as one). PtychoPINN's dataset keys, which the contract reads, are `ptychoreg.core.ptychopinn`.
"""
