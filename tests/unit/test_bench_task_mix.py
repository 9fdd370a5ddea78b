"""bench/task_mix.py: the load test's `--only` filter and bench/endpoint_cost.py's weighting arithmetic."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from bench.task_mix import contributions, iteration_shares, select_tasks, task_weights, user_weights


def _task(name: str) -> Callable[[], None]:
    def fn() -> None:
        return None

    fn.__name__ = name
    return fn


recipe, me, sign_in = _task("recipe"), _task("me"), _task("sign_in")
member_recipe = _task("recipe")
# Locust repeats a task `weight` times in its class's task list.
TASKS = {"Visitor": [recipe] * 3 + [sign_in], "Member": [member_recipe] * 2 + [me]}


def test_empty_filter_keeps_the_whole_mix() -> None:
    assert select_tasks(TASKS, "") == TASKS
    assert select_tasks(TASKS, " , ") == TASKS


def test_a_bare_name_keeps_the_task_in_every_class_that_has_it() -> None:
    selected = select_tasks(TASKS, "recipe")
    assert selected == {"Visitor": [recipe] * 3, "Member": [member_recipe] * 2}


def test_a_qualified_name_keeps_one_class_only() -> None:
    selected = select_tasks(TASKS, "Member.recipe, me")
    assert selected == {"Visitor": [], "Member": [member_recipe] * 2 + [me]}
    assert task_weights(selected["Member"]) == {"recipe": 2, "me": 1}


def test_unknown_names_are_refused_naming_them_and_the_known_tasks() -> None:
    with pytest.raises(ValueError, match="no task named") as caught:
        select_tasks(TASKS, "recipe,Visitor.me,nope")
    message = str(caught.value)
    assert "no task named Visitor.me, nope" in message
    assert "Visitor.recipe, Visitor.sign_in, Member.recipe, Member.me" in message


def test_a_class_left_without_tasks_is_not_spawned() -> None:
    assert user_weights(0.2, select_tasks(TASKS, "me")) == {"Visitor": 0, "Member": 20}
    assert user_weights(0.2, select_tasks(TASKS, "sign_in")) == {"Visitor": 80, "Member": 0}
    assert user_weights(0.2, select_tasks(TASKS, "")) == {"Visitor": 80, "Member": 20}


def test_anonymous_tasks_run_even_when_every_user_is_signed_in() -> None:
    assert user_weights(1.0, select_tasks(TASKS, "sign_in")) == {"Visitor": 1, "Member": 0}


def test_signed_in_tasks_without_signed_in_users_are_refused() -> None:
    with pytest.raises(ValueError, match="--auth-share must be above 0"):
        user_weights(0.0, select_tasks(TASKS, "Member.me"))


MIX = {
    "Visitor": {"weight": 80, "tasks": {"recipe": 3, "sign_in": 1}},
    "Member": {"weight": 20, "tasks": {"recipe": 2, "me": 2}},
}


def test_iteration_shares_are_class_weight_times_task_weight() -> None:
    shares = iteration_shares(MIX)
    assert shares == pytest.approx(
        {"Visitor.recipe": 0.6, "Visitor.sign_in": 0.2, "Member.recipe": 0.1, "Member.me": 0.1}
    )
    assert sum(shares.values()) == pytest.approx(1.0)


def test_a_class_without_tasks_has_no_share() -> None:
    mix = {"Visitor": {"weight": 80, "tasks": {}}, "Member": {"weight": 20, "tasks": {"me": 1}}}
    assert iteration_shares(mix) == {"Member.me": pytest.approx(1.0)}


def test_contributions_weight_cpu_per_iteration_by_the_mix_requests() -> None:
    shares = {"a": 0.5, "b": 0.5}
    # a: 100 µs per request, 1 request per iteration; b: 1000 µs per request, 3 requests per iteration.
    split = contributions(shares, {"a": (100.0, 1.0), "b": (1000.0, 3.0)})
    # Per iteration of the mix: 0.5 * 100 + 0.5 * 3000 = 1550 µs over 0.5 * 1 + 0.5 * 3 = 2 requests.
    assert split["us_per_mix_request"] == pytest.approx(775.0)
    assert split["requests_per_iteration"] == pytest.approx(2.0)
    assert split["rows"]["a"]["us_per_mix_request"] == pytest.approx(25.0)
    assert split["rows"]["b"]["us_per_mix_request"] == pytest.approx(750.0)
    assert split["rows"]["b"]["request_share"] == pytest.approx(0.75)
    assert split["rows"]["b"]["cost_share"] == pytest.approx(750 / 775)
    assert split["missing"] == []


def test_unmeasured_tasks_are_left_out_and_named() -> None:
    split = contributions({"a": 0.25, "b": 0.75}, {"b": (200.0, 2.0)})
    assert split["missing"] == ["a"]
    assert split["missing_iteration_share"] == pytest.approx(0.25)
    assert split["us_per_mix_request"] == pytest.approx(200.0)
    assert split["rows"]["b"]["cost_share"] == pytest.approx(1.0)
