"""Executors of the graph (reading services), DataLoader2, seeds.

Kept import-light: the public names are re-exported from ``streamdag``."""
