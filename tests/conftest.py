"""Shared fixtures. Helpers for real servers live in tests/support/."""
