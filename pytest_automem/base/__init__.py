"""The bottom layer: units, statistics, atomic writes and file locks.

Every other layer may import these; they import nothing else of ours, so
anything here can be reused by the gate, the dashboard or the spawner alone.
"""
