"""Reference implementations: the oracle every hidden test compares against.

Never shipped to students and never importable from a student's grading process.
"""
