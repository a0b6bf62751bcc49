"""The grading harness: ``python -m grader CLASS`` grades a folder of submissions.

Data flows one way: ``intake`` -> ``sandbox`` -> ``checks`` -> ``scoring`` -> ``reports``.
This package's ``__init__`` stays light: the sandbox's zygotes import ``grader.sandbox`` and must
never pull in ``reference`` (which holds the answers).
"""
__version__ = "0.1.0"
