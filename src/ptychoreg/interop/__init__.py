"""The field's file formats beside ours.

- `ptychopinn`: PtychoPINN's dataset keys and its `_metadata` record (the fixture carries them, the
  contract reads them);
- `ptychodus`: Ptychodus's NPZ product file (`ptycho-export` writes a reconstruction as one).
"""
