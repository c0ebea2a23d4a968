"""Snapshot files: how a run leaves memory snapshots on disk, and reads them back.

Kept apart from ``measure`` because whatever analyses snapshots reads
files, not a live process.
"""
