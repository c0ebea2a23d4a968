"""The exit codes of every ``automem`` command, in one place.

A script that calls ``automem`` branches on these, so they are a contract,
written down in docs/guarantees.md ("Exit codes") with a test per row.  A
command that wraps another (``monitor -- CMD``) passes the wrapped
command's status through as a shell would, so its own codes (3, 70, 124,
130, 143) are chosen to be the ones shells and coreutils already use.
"""

from __future__ import annotations

from ..measure.command_group import describe_returncode, signal_name

__all__ = [
    "EXIT_FINDING",
    "EXIT_INTERNAL",
    "EXIT_LIMIT",
    "EXIT_OK",
    "EXIT_TIMEOUT",
    "EXIT_USAGE",
    "SIGNAL_BASE",
    "describe_returncode",
    "for_signal",
    "of_returncode",
    "signal_name",
]

#: Fine: nothing to report.
EXIT_OK = 0
#: A finding (``investigate``) or a failed gate.
EXIT_FINDING = 1
#: A usage or input error, reported as one line on stderr naming the culprit.
EXIT_USAGE = 2
#: A limit given on the command line (``--max-peak``, ``--fail-on-pressure``) was crossed.
EXIT_LIMIT = 3
#: An internal failure (a dead sampler, a bug): sysexits.h's ``EX_SOFTWARE``.
#: Never 0 or 1, so it cannot pass for success or for a finding.
EXIT_INTERNAL = 70
#: ``--timeout`` stopped the command, as ``timeout(1)`` reports it.
EXIT_TIMEOUT = 124
#: Added to a signal's number when the signal ended the process, as shells do.
SIGNAL_BASE = 128


def for_signal(signum: int) -> int:
    """The code of a process ended by ``signum``: 130 for SIGINT, 143 for SIGTERM."""
    return SIGNAL_BASE + signum


def of_returncode(returncode: int) -> int:
    """A ``subprocess`` return code as a shell reports it (-9 becomes 137)."""
    return for_signal(-returncode) if returncode < 0 else returncode
