"""The product's outputs: where a memory verdict and its explanation reach CI users.

``junit`` attaches our reports to the JUnit file pytest writes; HTML dashboards
and CI step summaries will live here too.  Importing this package is cheap: each
output is its own module and nothing here imports pytest or an XML library.
"""
