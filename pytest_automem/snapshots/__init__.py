"""Snapshot files: how a run leaves memory snapshots on disk, and reads them back.

Kept apart from ``measure`` because the analysis of snapshots (issue 16) is a
consumer of files, not of a live process.
"""
