"""Results files named on the command line, read and merged, every failure one input error.

``automem merge`` and ``automem gate --current A B …`` read the same way:
each file whole, then united by :func:`~pytest_automem.results.merge.merge_results`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..results.merge import MergeConflictError, ResultsSource, merge_results
from ..results.results_file import ResultsFormatError, read_results
from .common import InputError

__all__ = ["read_merged", "read_results_input"]


def read_results_input(path: Path, option: str = "") -> dict[str, Any]:
    """The results document at ``path``; InputError naming the option and file."""
    what = f"{option} " if option else ""
    try:
        return read_results(path)
    except OSError as exc:
        raise InputError(f"{what}{path}: cannot read it ({exc.strerror or exc})") from None
    except ResultsFormatError as exc:
        raise InputError(f"{what}{exc}") from None


def read_merged(
    paths: Sequence[Path],
    *,
    prefer: str | None,
    option: str = "",
    written_to: Path | None = None,
) -> dict[str, Any]:
    """The documents at ``paths`` as one (the one itself when there is one
    and it is not to be written elsewhere).  ``written_to``: where the result
    goes, which its samples folder is stated relative to."""
    sources = [ResultsSource(str(path), read_results_input(path, option)) for path in paths]
    if len(sources) == 1 and written_to is None:
        return dict(sources[0].document)
    try:
        return merge_results(sources, prefer=prefer, written_to=written_to)
    except MergeConflictError as exc:
        raise InputError(f"{option + ': ' if option else ''}{exc}") from None
