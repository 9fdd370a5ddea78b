from __future__ import annotations

import dataclasses
import uuid
from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from potluck.recommendation.scoring import (
    PRIOR_STARS,
    Candidate,
    Interaction,
    TasteProfile,
    cuisine_cap,
    diversify,
    like_weight,
    popularity,
    quality,
    rank,
    score,
    shrunk_rating,
    social,
    taste_profile,
)

VIEWER = uuid.UUID(int=1)
OTHER = uuid.UUID(int=2)
_ids = iter(range(1000, 10**9))

cuisines = st.sampled_from(["italian", "mexican", "thai", "french", None])
tag_names = st.sampled_from(["pasta", "soup", "quick", "vegan", "spicy", "dessert"])
counts = st.integers(0, 10**6)
averages = st.floats(1, 5, allow_nan=False)


def _id() -> uuid.UUID:
    return uuid.UUID(int=next(_ids))


def like(cuisine: str | None, *tags: str, favorited: bool = True, stars: int | None = None) -> Interaction:
    return Interaction(_id(), cuisine, tags, favorited, stars)


def candidate(cuisine: str | None = "italian", *tags: str, **changes: object) -> Candidate:
    values: dict[str, object] = {
        "recipe_id": _id(),
        "author_id": OTHER,
        "cuisine": cuisine,
        "tags": tags,
        "rating_avg": None,
        "rating_count": 0,
        "favorites": 0,
        "views": 0,
        "followed_likers": 0,
    }
    values.update(changes)
    return Candidate(**values)  # type: ignore[arg-type]


@st.composite
def candidates(draw: st.DrawFn) -> Candidate:
    ratings = draw(counts)
    return candidate(
        draw(cuisines),
        *draw(st.lists(tag_names, max_size=4, unique=True)),
        rating_avg=draw(averages) if ratings else None,
        rating_count=ratings,
        favorites=draw(counts),
        views=draw(counts),
        followed_likers=draw(st.integers(0, 1000)),
    )


@st.composite
def profiles(draw: st.DrawFn) -> TasteProfile:
    likes = draw(
        st.lists(
            st.builds(
                like,
                cuisines,
                favorited=st.booleans(),
                stars=st.none() | st.integers(1, 5),
            ),
            max_size=10,
        )
    )
    tagged = [Interaction(i.recipe_id, i.cuisine, tuple(draw(st.lists(tag_names, max_size=3))), i.favorited, i.stars)
              for i in likes]  # fmt: skip
    return taste_profile(tagged)


def _with(c: Candidate, **changes: object) -> Candidate:
    return dataclasses.replace(c, **changes)  # type: ignore[arg-type]


# --- the profile ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("favorited", "stars", "weight"),
    [(True, None, 1.0), (False, 5, 1.0), (False, 4, 0.5), (False, 3, 0.0), (False, 1, 0.0), (True, 2, 1.0),
     (True, 4, 1.0)],
)  # fmt: skip
def test_like_weight(favorited: bool, stars: int | None, weight: float) -> None:
    assert like_weight(Interaction(_id(), "italian", (), favorited, stars)) == weight


def test_the_profile_counts_favorites_and_ratings_of_four_or_more_and_remembers_everything_seen() -> None:
    loved, liked, disliked = (
        like("italian", "pasta"),
        like("italian", favorited=False, stars=4),
        like("mexican", "spicy", favorited=False, stars=2),
    )
    profile = taste_profile([loved, liked, disliked])
    assert profile.cuisines == {"italian": 1.5}
    assert profile.tags == {"pasta": 1.0}
    assert profile.seen == {loved.recipe_id, liked.recipe_id, disliked.recipe_id}
    assert not profile.is_empty
    assert taste_profile([disliked]).is_empty


def test_top_cuisines_and_tags_heaviest_first() -> None:
    profile = taste_profile(
        [like("thai", "soup"), like("italian", "pasta", "quick"), like("italian", "pasta"), like("french", "quick")]
    )
    assert profile.top_cuisines(2) == ["italian", "french"]  # ties by name
    assert profile.top_tags(5) == ["pasta", "quick", "soup"]


@given(profile=profiles(), c=candidates())
def test_matches_are_cosines_between_0_and_1(profile: TasteProfile, c: Candidate) -> None:
    assert 0 <= profile.cuisine_match(c.cuisine) <= 1 + 1e-9
    assert 0 <= profile.tag_match(c.tags) <= 1 + 1e-9


def test_a_single_taste_matches_fully() -> None:
    profile = taste_profile([like("italian", "pasta", "quick")])
    assert profile.cuisine_match("italian") == pytest.approx(1)
    assert profile.tag_match(["quick", "pasta"]) == pytest.approx(1)
    assert profile.cuisine_match("thai") == profile.cuisine_match(None) == 0
    assert profile.tag_match(["pasta", "soup"]) == pytest.approx(0.5)  # 1 / (sqrt(2) * sqrt(2))


# --- quality, popularity, social ----------------------------------------------------------------------------


@given(avg=averages, n=counts)
def test_the_shrunk_rating_lies_between_the_prior_and_the_average(avg: float, n: int) -> None:
    value = shrunk_rating(avg, n)
    assert min(avg, PRIOR_STARS) - 1e-9 <= value <= max(avg, PRIOR_STARS) + 1e-9
    assert -1 - 1e-9 <= quality(avg, n) <= 1 + 1e-9


@given(avg=st.floats(3.01, 5), n=st.integers(0, 10**5))
def test_more_good_ratings_raise_quality(avg: float, n: int) -> None:
    assert quality(avg, n + 1) > quality(avg, n)


def test_one_five_star_rating_does_not_beat_many_good_ones() -> None:
    assert quality(5.0, 1) < quality(4.6, 100)
    assert quality(None, 0) == 0
    assert quality(1.0, 50) < 0


@given(f=counts, v=counts, more=st.integers(1, 10**6))
def test_popularity_is_between_0_and_1_and_never_falls(f: int, v: int, more: int) -> None:
    assert 0 <= popularity(f, v) <= 1
    assert popularity(f + more, v) >= popularity(f, v)
    assert popularity(f, v + more) >= popularity(f, v)
    assert popularity(0, 0) == 0


@given(k=st.integers(0, 10**6))
def test_social_rises_with_each_liker_and_stays_below_1(k: int) -> None:
    assert 0 <= social(k) < 1
    assert social(k + 1) > social(k)


# --- the score ----------------------------------------------------------------------------------------------


@given(profile=profiles(), c=candidates(), more=st.integers(1, 100))
def test_followed_likers_raise_the_score(profile: TasteProfile, c: Candidate, more: int) -> None:
    assert score(_with(c, followed_likers=c.followed_likers + more), profile) > score(c, profile)


@given(profile=profiles(), c=candidates(), more=st.integers(1, 10**6))
def test_favorites_and_views_never_lower_the_score(profile: TasteProfile, c: Candidate, more: int) -> None:
    assert score(_with(c, favorites=c.favorites + more), profile) >= score(c, profile)
    assert score(_with(c, views=c.views + more), profile) >= score(c, profile)


@given(profile=profiles(), c=candidates(), low=averages, high=averages)
def test_a_higher_average_never_lowers_the_score(profile: TasteProfile, c: Candidate, low: float, high: float) -> None:
    low, high = sorted((low, high))
    base = _with(c, rating_count=max(1, c.rating_count))
    assert score(_with(base, rating_avg=high), profile) >= score(_with(base, rating_avg=low), profile)


def test_taste_beats_general_quality() -> None:
    profile = taste_profile([like("italian", "pasta"), like("italian", "pasta", "quick")])
    plain_italian = candidate("italian", "pasta")
    great_mexican = candidate("mexican", "spicy", rating_avg=4.9, rating_count=500, favorites=2000, views=10**5)
    assert score(plain_italian, profile) > score(great_mexican, profile)


# --- ranking ------------------------------------------------------------------------------------------------


def test_never_the_viewers_own_nor_anything_they_favorited_or_rated() -> None:
    favorited = like("italian", "pasta")
    rated_low = like("italian", favorited=False, stars=1)
    profile = taste_profile([favorited, rated_low])
    mine = candidate("italian", "pasta", author_id=VIEWER, favorites=50)
    again = candidate("italian", "pasta", recipe_id=favorited.recipe_id)
    again_low = candidate("italian", recipe_id=rated_low.recipe_id)
    fresh = candidate("italian", "pasta")
    assert rank([mine, again, again_low, fresh], profile, VIEWER, 10) == [fresh.recipe_id]


@given(profile=profiles(), cs=st.lists(candidates(), max_size=40), limit=st.integers(0, 50))
def test_rank_returns_distinct_positive_eligible_ids(profile: TasteProfile, cs: list[Candidate], limit: int) -> None:
    mine = [_with(c, author_id=VIEWER, recipe_id=_id()) for c in cs[:3]]
    seen = [_with(c, recipe_id=i) for c, i in zip(cs, profile.seen, strict=False)]
    out = rank([*cs, *mine, *seen], profile, VIEWER, limit)
    by_id = {c.recipe_id: c for c in cs}
    assert len(out) == len(set(out)) <= limit
    assert all(i in by_id for i in out)  # never the viewer's own, never one they favorited or rated
    assert all(score(by_id[i], profile) > 0 for i in out)
    positives = {c.recipe_id for c in cs if score(c, profile) > 0}
    assert len(out) == min(limit, len(positives))


def test_italian_lovers_get_italian_first_and_followed_likes_count() -> None:
    profile = taste_profile([like("italian", "pasta"), like("italian", "pasta")])
    italian = [candidate("italian", "pasta", favorites=n) for n in (3, 2, 1)]
    friends_pick = candidate("thai", "curry", followed_likers=2)
    popular = candidate("mexican", "spicy", favorites=40, rating_avg=4.5, rating_count=20)
    out = rank([popular, friends_pick, *italian], profile, VIEWER, 10)
    # Two Italian first (the cap), then the best of the rest, then Italian again.
    assert out[:2] == [italian[0].recipe_id, italian[1].recipe_id]
    assert out[2:4] == [friends_pick.recipe_id, popular.recipe_id]
    assert out[4] == italian[2].recipe_id


def test_cold_start_falls_back_to_well_rated_popular_recipes() -> None:
    empty = taste_profile([])
    assert empty.is_empty
    well_rated_popular = candidate("thai", favorites=300, views=5000, rating_avg=4.7, rating_count=80)
    popular = candidate("mexican", favorites=300, views=5000)
    well_rated = candidate("french", rating_avg=4.8, rating_count=3)
    poorly_rated = candidate("italian", favorites=5, rating_avg=1.5, rating_count=40)
    unknown = candidate("italian")
    out = rank([unknown, poorly_rated, well_rated, popular, well_rated_popular], empty, VIEWER, 10)
    assert out == [well_rated_popular.recipe_id, popular.recipe_id, well_rated.recipe_id]


def test_ties_go_to_the_newer_id_and_duplicates_count_once() -> None:
    older, newer = candidate("thai", favorites=5), candidate("mexican", favorites=5)
    assert rank([older, newer, older], taste_profile([]), VIEWER, 5) == [newer.recipe_id, older.recipe_id]


# --- diversity ----------------------------------------------------------------------------------------------


def test_cuisine_cap() -> None:
    assert [cuisine_cap(i) for i in (1, 2, 3, 6, 7, 9, 10, 20, 100)] == [2, 2, 2, 2, 3, 3, 4, 7, 34]


ranked_lists = st.lists(cuisines, max_size=60).map(lambda cs: [(_id(), c) for c in cs])


@given(ranked=ranked_lists)
def test_diversify_keeps_every_prefix_under_the_cap_while_other_cuisines_remain(
    ranked: list[tuple[uuid.UUID, str | None]],
) -> None:
    cuisine_of = dict(ranked)
    out = diversify(ranked)
    assert sorted(out) == sorted(cuisine_of)
    held: Counter[str | None] = Counter()
    for place, recipe_id in enumerate(out, start=1):
        cuisine = cuisine_of[recipe_id]
        if held[cuisine] + 1 > cuisine_cap(place):
            # Over the cap only when every recipe still to place belongs to a cuisine at its cap.
            assert all(held[cuisine_of[r]] >= cuisine_cap(place) for r in out[place - 1 :])
        held[cuisine] += 1


@given(ranked=ranked_lists)
def test_diversify_keeps_the_score_order_within_a_cuisine(ranked: list[tuple[uuid.UUID, str | None]]) -> None:
    cuisine_of = dict(ranked)
    out = diversify(ranked)
    for cuisine in set(cuisine_of.values()):
        assert [r for r in out if cuisine_of[r] == cuisine] == [r for r, c in ranked if c == cuisine]


@given(ranked=ranked_lists)
def test_an_already_diverse_list_is_left_alone(ranked: list[tuple[uuid.UUID, str | None]]) -> None:
    held: Counter[str | None] = Counter()
    for place, (_, cuisine) in enumerate(ranked, start=1):
        held[cuisine] += 1
        if held[cuisine] > cuisine_cap(place):
            return
    assert diversify(ranked) == [r for r, _ in ranked]


def test_a_page_of_twenty_holds_at_most_seven_of_one_cuisine() -> None:
    ranked = [(_id(), "italian") for _ in range(30)] + [(_id(), c) for c in ["thai", "french", "mexican"] * 10]
    top = diversify(ranked)[:20]
    cuisine_of = dict(ranked)
    assert Counter(cuisine_of[r] for r in top)["italian"] == 7
    assert [cuisine_of[r] for r in top[:3]] == ["italian", "italian", "thai"]
