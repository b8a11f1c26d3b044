"""The version number, in a module of its own that imports nothing, so that any module can name it
without importing the package's lazy public surface (pipeline/__init__.py)."""

__version__ = "0.1.0"
