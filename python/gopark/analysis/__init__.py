"""Analyses over the model: inventory, trend, trace, cross-check, diagnose. No I/O, no terminal."""
