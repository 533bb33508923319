"""Readers of real data, one module per format, and what they share; `evaluate.importers` runs them."""
