"""Thin command-line entry points over the library (`python -m ptychoreg.cli.<name>` or `ptycho-<name>`).

A command module imports at its top only what loads neither numpy nor torch; those load inside its `_main`,
after `entry_points` has set the process up (numerics pinned before the libraries read their settings;
tests/test_imports.py holds every command to it). The harness's own entries (`python -m
ptychoreg.harness.<name>`) follow the same rule.
"""
