"""Measurement: the sampler child and its parent side, windows, GC, pressure.

Everything that reads memory lives here, above ``base`` only, so the plugin,
the CLI and the automaton runner all measure the same way.
"""
