"""The built-in leaky demo program and the helpers that build and run Go programs."""
