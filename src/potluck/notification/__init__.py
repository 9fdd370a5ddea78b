"""Notifications: one per follower for each new public recipe, and one when someone follows you."""
