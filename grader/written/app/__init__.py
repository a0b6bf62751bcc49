"""Marking written answers in the browser (``python -m grader mark OUT``): ``server`` is the app,
``marks`` the pure functions over ``manual.csv`` and the rubric items' points."""
