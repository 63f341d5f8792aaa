"""Integrations of pycdb with servers written in Python (optional extras)."""
