"""Potluck: the backend of a recipe-sharing platform."""

__version__ = "0.1.0"
