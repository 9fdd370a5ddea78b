"""Potluck: the backend of a recipe-sharing platform."""
