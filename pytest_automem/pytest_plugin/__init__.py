"""The pytest surface: options, fixtures, the session's hooks and per-test windows.

``plugin`` is the ``pytest11`` entry point (named ``automem``); the rest is
imported from it only when a session monitors something.
"""
