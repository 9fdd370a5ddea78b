"""Recipes with their ingredients, steps, tags and nutrition; ratings and favorites."""
