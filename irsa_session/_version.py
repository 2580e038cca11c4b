"""The package version, defined here once."""

__version__ = "0.1.0"
