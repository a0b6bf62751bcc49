"""Reference implementation of the generative-models assignment: formulas, models, trainer, statistics.

Course staff only: this package never enters a student's sandbox.
"""
