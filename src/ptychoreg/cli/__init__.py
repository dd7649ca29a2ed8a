"""Thin command-line entry points over the library (`python -m ptychoreg.cli.<name>` or `ptycho-<name>`)."""
