"""Results files given to a command, each read before anything is written.

A command that writes from several runs (a baseline, a budgets file) must
leave its old output untouched when any one input is bad: every file is
read first, and the first bad one is the one-line input error, naming it.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from ..results.baseline import Run, read_runs
from ..results.results_file import ResultsFormatError
from .common import InputError

__all__ = ["read_inputs", "write_failed"]


def read_inputs(paths: Sequence[str | os.PathLike[str]]) -> list[Run]:
    """Every run in ``paths``, or an InputError naming the file (and line) at fault."""
    try:
        return read_runs(paths)
    except ResultsFormatError as exc:
        raise InputError(" ".join(str(exc).split())) from None
    except OSError as exc:
        raise InputError(f"{exc.filename}: {exc.strerror or exc}") from None


def write_failed(option: str, path: str | os.PathLike[str], exc: OSError) -> InputError:
    """An output that could not be written, as the one-line error naming the option."""
    return InputError(f"cannot write {option} {os.fspath(path)}: {exc.strerror or exc}")
