"""Verdicts: every pass or fail, decided in one place.

A test against its ``memory_budget`` (:mod:`.budget`), a watched command
against ``automem monitor``'s limits (:mod:`.limits`), an investigation's
checks (:mod:`.findings`), one run against another (:mod:`.gate`).  The
plugin and the commands gather the figures, ask here, and report what they
are told.
"""
