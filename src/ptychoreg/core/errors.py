"""The one exception type users see: a one-line message naming the file, the key and the problem."""

from __future__ import annotations

import os


class PtychoError(Exception):
    """An expected failure (bad input, bad parameter, unusable file): reported in one line, no traceback."""

    def __init__(self, where: str | os.PathLike | None, problem: str, key: str | None = None):
        self.where = None if where is None else str(where)
        self.key = key
        self.problem = problem
        parts = [p for p in (self.where, f"key '{key}'" if key else None, problem) if p]
        super().__init__(": ".join(parts))
