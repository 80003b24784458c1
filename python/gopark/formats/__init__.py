"""Parsers: pure functions of bytes to model objects. They know nothing of analysis."""
