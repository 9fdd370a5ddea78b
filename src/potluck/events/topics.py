"""Event names (past tense) and the aggregate each one is ordered by."""

from __future__ import annotations

RECIPE_CREATED = "recipe.created"
RECIPE_UPDATED = "recipe.updated"
RECIPE_DELETED = "recipe.deleted"
RATING_CREATED = "rating.created"
RECIPE_IMAGE_REPLACED = "recipe.image_replaced"  # also when removed (replaced by nothing)
USER_FOLLOWED = "user.followed"
USER_REGISTERED = "user.registered"  # the new account's owner is sent a verification link
USER_REGISTRATION_REPEATED = "user.registration_repeated"  # someone registered an email that has an account
USER_PASSWORD_RESET_REQUESTED = "user.password_reset_requested"
# A write's surrogate keys owed to the edge nodes (cache/edge.py): re-purged by the relay until every node acks.
EDGE_PURGE = "edge.purge"

# Events of one aggregate are delivered in the order they were recorded; a rating belongs to its recipe.
AGGREGATE_OF_TOPIC = {
    RECIPE_CREATED: "recipe",
    RECIPE_UPDATED: "recipe",
    RECIPE_DELETED: "recipe",
    RATING_CREATED: "recipe",
    RECIPE_IMAGE_REPLACED: "recipe",
    USER_FOLLOWED: "user",
    USER_REGISTERED: "user",
    USER_REGISTRATION_REPEATED: "user",
    USER_PASSWORD_RESET_REQUESTED: "user",
    # Each purge its own aggregate (a fresh id): a node that stays down holds back nothing but its own retries.
    EDGE_PURGE: "edge",
}

TOPICS = tuple(AGGREGATE_OF_TOPIC)
