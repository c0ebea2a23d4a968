"""Where the measured plugin came from, for the benchmarks' headers.

A figure is only worth comparing with the code it measured: each benchmark
prints the folder, its git commit and whether it had local changes.
"""

from __future__ import annotations

import subprocess
from pathlib import Path


def describe_checkout(path: Path, pathspec: str = ".") -> str:
    """``path``, its short commit and ``(modified)`` if ``pathspec`` has
    uncommitted changes; just ``path`` outside a git checkout."""
    try:
        commit = _git(path, "rev-parse", "--short", "HEAD")
        dirty = _git(path, "status", "--porcelain", "--", pathspec)
    except (OSError, subprocess.CalledProcessError):
        return str(path)
    return f"{path} at {commit}{' (modified)' if dirty else ''}"


def _git(path: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(path), *args], capture_output=True, text=True, check=True
    ).stdout.strip()
