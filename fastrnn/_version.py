"""The package version, in a module of its own: written into every saved file."""

__version__ = "0.1.0"
