"""Maintainer tools (not shipped to students)."""
