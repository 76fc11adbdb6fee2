"""naftiko: a Python runtime for declarative API capabilities."""

__version__ = "0.1.0"
