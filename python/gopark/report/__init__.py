"""Reporters: turn computed results into text, JSON, HTML. They never parse or collect."""
