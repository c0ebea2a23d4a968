"""Results: the versioned results file and the session's record spool.

The plugin writes results files; the gate and the dashboard only read them,
so nothing in this package may import the pytest plugin.
"""
