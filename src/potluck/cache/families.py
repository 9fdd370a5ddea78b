"""The design's CACHE_CONFIG, exactly: one table of families, their TTLs and key patterns."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Family:
    name: str
    ttl_seconds: int
    pattern: str
    # Missing ids are remembered this long, so a flood of requests for a bad id does not reach the database.
    negative_ttl_seconds: int = 30


RECIPE_DETAIL = Family("recipe_detail", 3600, "recipe:{id}")
USER_PROFILE = Family("user_profile", 1800, "user:{id}")
SEARCH_RESULTS = Family("search_results", 300, "search:{hash}")
TRENDING = Family("trending", 600, "trending:{period}")
RECOMMENDATIONS = Family("recommendations", 1800, "recommend:{user_id}")

# Not in the design's table (issue 15): pages of the recipe lists, as ids under the generation of the list's scope
# (its author, tag or cuisine bucket, `minutes` or `all`: recipe/relevance.py), which the writes that change them
# bump, hydrated through recipe:{id}. The generation, not the TTL, keeps them right; the TTL only bounds what a page
# of a rare filter costs in memory.
RECIPE_LIST = Family("recipe_list", 300, "list:{scope}:{generation}:{hash}")

FAMILIES: dict[str, Family] = {
    f.name: f for f in (RECIPE_DETAIL, USER_PROFILE, SEARCH_RESULTS, TRENDING, RECOMMENDATIONS)
}
