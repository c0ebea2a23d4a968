"""The product's outputs: where a memory verdict and its explanation reach CI users.

``junit`` is the one JUnit writer (our own files, and our reports in
pytest's); HTML dashboards and CI step summaries will live here too.
Importing this package is cheap: each output is its own module and nothing
here imports pytest or an XML library.
"""
