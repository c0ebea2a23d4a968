"""What every sub-command shares: exit codes and the one-line input error."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import TypeVar

EXIT_OK = 0
EXIT_FINDING = 1
EXIT_USAGE = 2

T = TypeVar("T")


class InputError(Exception):
    """Bad input from the user: printed as one line, exit code 2."""


def typed(parse: Callable[[str], T], what: str) -> Callable[[str], T]:
    """Wrap a units parser as an argparse ``type``; argparse names the option."""

    def convert(text: str) -> T:
        try:
            return parse(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    convert.__name__ = what
    return convert
