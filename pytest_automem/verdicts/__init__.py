"""Verdicts: a test's memory budget and the judgement of a window against it."""
