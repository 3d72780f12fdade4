"""The package version (the ground floor: everything may read it)."""
__version__ = "0.1.0"
