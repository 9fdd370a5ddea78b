"""Potluck's traffic for Locust: an open (arrival-rate) model with the design's two k6 scenarios.

    uv run --group loadtest python -m bench.loadtest --scenario constant_load --rate 200 --duration 60
        # the wrapper: cluster up, /metrics before and after, this file headless, report.md + latency.png
    uv run --group loadtest locust -f bench/locustfile.py --headless --host http://127.0.0.1:8080 \\
        --scenario spike_test --scale 0.05 --duration 90
    uv run --group loadtest python bench/locustfile.py --scenario spike_test --scale 0.05 --duration 90
        # prints the plan (stages, users, per-second target rate) as JSON and exits

Scenarios (`--scenario`, or LOADTEST_SCENARIO; every option below also reads the LOADTEST_* variable named in
`locust --help`), from shared/design/scalability-and-caching.md, "Load Testing & Capacity Planning":

* constant_load: k6 constant-arrival-rate, 1000 arrivals/s for 30 min. `--rate` sets the rate (default
  1000 x `--scale`), `--duration` the seconds (default 1800).
* spike_test: k6 ramping-arrival-rate, start 100/s, linear ramps to 1000 (5 min), 5000 (10 min), 100 (5 min).
  `--scale` multiplies the rates (or `--rate` names the peak and the others keep the design's proportions);
  `--duration` is the three ramps together, split 5:10:5 as in the design, or `--stage-seconds a,b,c`.

The open model. k6's arrival-rate executors start iterations on a clock, whatever the latency; a closed loop
(N users, each waiting for its answer before the next request) lowers its own rate as the server slows and so
hides overload. Here every simulated user is a Poisson arrival process of `--per-user-rate` iterations/s,
scheduled on the wall clock (a user that fell behind starts its next iteration at once), and the shape keeps
rate / per-user-rate users running (k6's preAllocatedVUs). With the default 0.5/s a user is idle ~95% of the
time at 100 ms latency and keeps its rate until its iterations take ~2 s on average; an arrival that falls more
than one mean interval behind is dropped and counted (k6's dropped_iterations), written next to the CSV files
as <csv prefix>_arrivals.json.

The traffic. Recipe reads are Zipf-distributed (s = `--zipf-s`, 1.1) over the public recipe ids in the order
`GET /api/v1/recipes` returns them (newest first), fetched once at the start (up to `--max-ids`); searches are
Zipf over bench/queries.txt (most popular first). Every user has its own seeded RNG (`--seed`). Most users are
anonymous; `--auth-share` (20%) are logged in, sharing `--member-accounts` seeded accounts (password
potluck-demo) logged in at the start, refreshing their tokens before they expire. Mix per 1000 iterations:

  anonymous: recipe 444, recipe card (fields=) 60, list 150, search 150, trending searches 15, trending 60,
             author profile 115, sign-in 2, signed-out write 4 (rating, favorite or new recipe: 401; half of
             them then sign in and write again). Logins are kept rare: an argon2 verification costs ~160 ms of
             CPU, as much as ~300 cached reads.
  logged in: recipe 300, card 40, list 90, search 100, trending searches 10, trending 30, recommendations 80,
             author 50, favorites 50, me 25, unread notifications 40; writes: rating 80, favorite (3 in 4 PUT,
             1 in 4 DELETE) 70, new recipe 10, edit of the account's recipe 25 (GET for the ETag, PATCH with
             If-Match; on 412, read again and retry once). New recipes and edits are the rare writes: each one
             also invalidates every cached search (the search generation).

That is ~4% of iterations writing (18.5% of the logged-in ones, 0.4% of the anonymous ones). Within a task:
lists are 1-3 pages following `next_cursor` (a cuisine, tag or time filter on half of them); author profiles
list the author's recipes 40% of the time; searches are 10% type-ahead (a prefix of the query, `prefix=true`),
25% with one filter or sort (cuisine, tag, max_total_minutes, min_rating, ingredient, exclude_ingredient,
sort=rating|newest), and 20% go on to page 2 or 3 by cursor; trending asks for the day 50%, the week 35%, the
month 15%.

`--only` (LOADTEST_ONLY) runs some tasks of the mix alone, comma-separated: `recipe` (in every user class that
has it) or `Visitor.recipe` (anonymous only), `Member.me` (signed in); a user class left without tasks is not
spawned, and an unknown name is refused with the list of the mix's tasks (bench/endpoint_cost.py runs each task
this way). The plan printer (`python bench/locustfile.py`) prints the selected mix's weights as "mix".

Expected answers are not errors: a signed-out write's 401 and an edit's 412 (the users sharing an account edit
its recipes concurrently) are marked successes and counted under "expected_outcomes" in <csv prefix>_arrivals.json.
Every other status from 400 on, every 5xx and every connection error is a failure.

Search, trending searches, trending and recommendations run only when the API's OpenAPI document has them (a
GET path ending in /search, ending in /search/trending, containing /trending, containing recommend); otherwise
their weight is 0 and the rest of the mix keeps its proportions. Requests are named by route template, so
statistics group per endpoint.
"""

from __future__ import annotations

import argparse
import bisect
import itertools
import json
import logging
import math
import os
import random
import sys
import time
import urllib.parse
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import gevent
import gevent.pool
import locust.stats
from locust import FastHttpUser, LoadTestShape, events, task
from locust.contrib.fasthttp import FastHttpSession
from locust.env import Environment
from locust.event import EventHook

from task_mix import select_tasks, task_weights, user_weights

log = logging.getLogger("potluck.load")
# The stats history is written every second but flushed every 5 s by default: bench/loadtest.py reads it to see
# when the users start and how the run goes (bench/endpoint_cost.py times its windows from it).
locust.stats.CSV_STATS_FLUSH_INTERVAL_SEC = 1

API = "/api/v1"
PASSWORD = "potluck-demo"
QUERIES_FILE = Path(__file__).resolve().parent / "queries.txt"
SCENARIOS = ("constant_load", "spike_test", "overload")
# overload: a sustainable base rate, a step to the peak (`--rate`), held, a step back to the base; the parts'
# seconds are `--stage-seconds head,peak,tail` (or `--duration` for the peak's). Every request's time, status and
# latency goes to <csv prefix>_requests.csv, for bench/overload.py (admitted p99, the 503s, the recovery).
OVERLOAD_SECONDS = (20.0, 60.0, 30.0)
OVERLOAD_STEP_SECONDS = 1.0

# The design's k6 scenarios.
DESIGN_CONSTANT_RATE = 1000.0
DESIGN_CONSTANT_SECONDS = 1800.0
DESIGN_SPIKE_START = 100.0
DESIGN_SPIKE_STAGES = ((300.0, 1000.0), (600.0, 5000.0), (300.0, 100.0))  # (seconds, target rate at its end)
DESIGN_SPIKE_PEAK = max(rate for _, rate in DESIGN_SPIKE_STAGES)


# ----------------------------------------------------------------------------------------------------- options


@dataclass(frozen=True, slots=True)
class Option:
    flag: str
    env: str
    type: Callable[[str], Any]
    default: Any
    help: str

    @property
    def dest(self) -> str:
        return self.flag.lstrip("-").replace("-", "_")


OPTIONS: tuple[Option, ...] = (
    Option("--scenario", "LOADTEST_SCENARIO", str, "constant_load", "constant_load or spike_test (the design's)"),
    Option(
        "--rate",
        "LOADTEST_RATE",
        float,
        None,
        "constant_load: arrivals/s (default 1000 x scale); spike_test: the peak (default 5000 x scale)",
    ),
    Option(
        "--duration",
        "LOADTEST_DURATION",
        float,
        None,
        "seconds; constant_load: the run (default 1800); spike_test: the 3 ramps, split 5:10:5 (default 1200)",
    ),
    Option(
        "--stage-seconds",
        "LOADTEST_STAGE_SECONDS",
        str,
        "",
        "spike_test: each ramp's seconds, 'a,b,c'; overload: 'head,peak,tail' (default 20,60,30)",
    ),
    Option("--base-rate", "LOADTEST_BASE_RATE", float, None, "overload: arrivals/s before and after (default rate/4)"),
    Option("--scale", "LOADTEST_SCALE", float, 1.0, "factor on the design's rates (1000/s; 100, 1000, 5000, 100/s)"),
    Option(
        "--per-user-rate",
        "LOADTEST_PER_USER_RATE",
        float,
        0.5,
        "iterations/s of one simulated user; users = rate / this (keep 1/this above the slowest iteration)",
    ),
    Option("--auth-share", "LOADTEST_AUTH_SHARE", float, 0.2, "share of simulated users that are logged in"),
    Option("--member-accounts", "LOADTEST_MEMBER_ACCOUNTS", int, 20, "seeded accounts the logged-in users share"),
    Option("--max-ids", "LOADTEST_MAX_IDS", int, 5000, "public recipe ids fetched at the start (Zipf universe)"),
    Option("--zipf-s", "LOADTEST_ZIPF_S", float, 1.1, "Zipf exponent of recipe popularity"),
    Option("--queries", "LOADTEST_QUERIES", str, str(QUERIES_FILE), "search queries, one a line, most popular first"),
    Option("--seed", "LOADTEST_SEED", int, 1, "base of the per-user random seeds"),
    Option(
        "--only",
        "LOADTEST_ONLY",
        str,
        "",
        "run only these tasks of the mix, comma-separated: a task's name (recipe, me: in every user class that has "
        "it) or Class.task (Visitor.recipe); each user class runs its tasks among them, one without any is not "
        "spawned; empty: the whole mix",
    ),
)


@dataclass(slots=True)
class Config:
    scenario: str = "constant_load"
    rate: float | None = None
    duration: float | None = None
    stage_seconds: str = ""
    base_rate: float | None = None
    scale: float = 1.0
    per_user_rate: float = 0.5
    auth_share: float = 0.2
    member_accounts: int = 20
    max_ids: int = 5000
    zipf_s: float = 1.1
    queries: str = str(QUERIES_FILE)
    seed: int = 1
    only: str = ""

    @classmethod
    def from_namespace(cls, ns: argparse.Namespace) -> Config:
        return cls(**{o.dest: getattr(ns, o.dest) for o in OPTIONS})


CONFIG = Config()


@events.init_command_line_parser.add_listener
def _add_options(parser: Any, **_: Any) -> None:
    group = parser.add_argument_group("potluck load test (bench/locustfile.py)")
    for option in OPTIONS:
        group.add_argument(option.flag, type=option.type, default=option.default, env_var=option.env, help=option.help)


# -------------------------------------------------------------------------------------------------------- plan


@dataclass(frozen=True, slots=True)
class Plan:
    """Target arrival rate over time: linear ramps from `start_rate` through each stage's target (k6's model)."""

    scenario: str
    start_rate: float
    stages: tuple[tuple[float, float], ...]

    @property
    def seconds(self) -> float:
        return sum(seconds for seconds, _ in self.stages)

    @property
    def peak_rate(self) -> float:
        return max([self.start_rate, *(rate for _, rate in self.stages)])

    def rate_at(self, t: float) -> float:
        begin, rate = 0.0, self.start_rate
        for seconds, target in self.stages:
            if t < begin + seconds:
                return rate + (target - rate) * (t - begin) / seconds
            begin, rate = begin + seconds, target
        return rate

    def users_at(self, t: float, per_user_rate: float) -> int:
        return max(1, math.ceil(self.rate_at(t) / per_user_rate - 1e-9))

    def as_dict(self, per_user_rate: float) -> dict[str, Any]:
        return {
            "scenario": self.scenario,
            "start_rate": self.start_rate,
            "stages": [{"seconds": s, "target_rate": r} for s, r in self.stages],
            "seconds": self.seconds,
            "peak_rate": self.peak_rate,
            "per_user_rate": per_user_rate,
            "peak_users": math.ceil(self.peak_rate / per_user_rate),
            "target_rate_per_second": [round(self.rate_at(t + 0.5), 3) for t in range(math.ceil(self.seconds))],
        }


def build_plan(config: Config) -> Plan:
    """The run `config` asks for; ValueError on a nonsensical one."""
    if config.scenario not in SCENARIOS:
        raise ValueError(f"--scenario must be one of {', '.join(SCENARIOS)}, not {config.scenario!r}")
    for name in ("rate", "duration", "scale", "per_user_rate"):
        value = getattr(config, name)
        if value is not None and value <= 0:
            raise ValueError(f"--{name.replace('_', '-')} must be positive")
    if config.scenario == "constant_load":
        rate = config.rate if config.rate is not None else DESIGN_CONSTANT_RATE * config.scale
        seconds = config.duration if config.duration is not None else DESIGN_CONSTANT_SECONDS
        return Plan("constant_load", rate, ((seconds, rate),))
    if config.scenario == "overload":
        return overload_plan(config)
    factor = config.rate / DESIGN_SPIKE_PEAK if config.rate is not None else config.scale
    design_seconds = [seconds for seconds, _ in DESIGN_SPIKE_STAGES]
    if config.stage_seconds.strip():
        lengths = [float(x) for x in config.stage_seconds.split(",") if x.strip()]
        if len(lengths) == 1:
            lengths *= len(design_seconds)
        if len(lengths) != len(design_seconds) or min(lengths) <= 0:
            raise ValueError(f"--stage-seconds needs {len(design_seconds)} positive numbers (or one for all)")
    elif config.duration is not None:
        lengths = [s * config.duration / sum(design_seconds) for s in design_seconds]
    else:
        lengths = design_seconds
    stages = tuple((length, rate * factor) for length, (_, rate) in zip(lengths, DESIGN_SPIKE_STAGES, strict=True))
    return Plan("spike_test", DESIGN_SPIKE_START * factor, stages)


def overload_plan(config: Config) -> Plan:
    """Base rate, a step (1 s) to the peak, the peak held, a step back, the base rate again."""
    peak = config.rate if config.rate is not None else DESIGN_CONSTANT_RATE * config.scale
    base = config.base_rate if config.base_rate is not None else peak / 4
    head, held, tail = OVERLOAD_SECONDS
    if config.stage_seconds.strip():
        parts = [float(x) for x in config.stage_seconds.split(",") if x.strip()]
        if len(parts) != 3 or min(parts) <= 0:
            raise ValueError("--stage-seconds for overload needs 3 positive numbers: head,peak,tail")
        head, held, tail = parts
    elif config.duration is not None:
        held = config.duration
    step = OVERLOAD_STEP_SECONDS
    stages = ((head, base), (step, peak), (held, peak), (step, base), (tail, base))
    return Plan("overload", base, stages)


PLAN: Plan = build_plan(CONFIG)
# (seconds since the catalog was ready, status (0: no answer), milliseconds) of every request: overload only.
REQUESTS: list[tuple[float, int, float]] = []


@events.request.add_listener
def _on_request(response: Any = None, response_time: float = 0.0, **_: Any) -> None:
    ready_at = CATALOG.ready_at
    if PLAN.scenario != "overload" or ready_at is None:
        return
    status = getattr(response, "status_code", 0) or 0
    REQUESTS.append((time.monotonic() - ready_at, int(status), float(response_time)))


class ArrivalRateShape(LoadTestShape):
    """Keeps rate(t) / per-user-rate users running; the clock starts when the catalog is loaded."""

    def tick(self) -> tuple[int, float] | None:
        ready_at = CATALOG.ready_at
        if ready_at is None:  # the first start() runs the setup (test_start) before any user spawns
            return PLAN.users_at(0.0, CONFIG.per_user_rate), float(PLAN.users_at(0.0, CONFIG.per_user_rate))
        t = time.monotonic() - ready_at
        if t >= PLAN.seconds:
            return None
        users = PLAN.users_at(t, CONFIG.per_user_rate)
        current = self.get_current_user_count() if self.runner is not None else 0
        # Reach the new count within the 1 s between ticks.
        return users, float(max(1, abs(users - current)))


# ------------------------------------------------------------------------------------------------ shared state


@dataclass(slots=True)
class Account:
    username: str
    user_id: str
    access_token: str
    refresh_token: str
    refresh_at: float  # monotonic: refresh once past two thirds of the access token's life
    refreshing: bool = False
    # Its public recipes among the catalog's, then those its users create: what its users edit. Shared by every
    # simulated user of the account, so their edits race now and then (412, see Member.edit_own_recipe).
    recipes: list[str] = field(default_factory=list)


@dataclass(slots=True)
class Catalog:
    recipe_ids: list[str] = field(default_factory=list)
    recipe_authors: list[str] = field(default_factory=list)
    recipe_cdf: list[float] = field(default_factory=list)
    usernames: list[str] = field(default_factory=list)
    queries: list[str] = field(default_factory=list)
    query_cdf: list[float] = field(default_factory=list)
    # Optional endpoints: feature -> the GET path template from the OpenAPI document, None when absent.
    endpoints: dict[str, str | None] = field(default_factory=dict)
    accounts: list[Account] = field(default_factory=list)
    ready_at: float | None = None


@dataclass(slots=True)
class Arrivals:
    scheduled: int = 0
    late: int = 0  # started more than LATE_S after their scheduled time
    dropped: int = 0  # more than one mean interval behind: skipped (k6: dropped_iterations)
    completed: int = 0  # iterations that ran to their end (requests per iteration = requests / completed)


CATALOG = Catalog()
ARRIVALS = Arrivals()
# Answers the clients are built for, marked successes in Locust's statistics and counted here instead:
# outcome -> count (a signed-out write's 401, an edit's 412). Every other status from 400 on is a failure.
EXPECTED: dict[str, int] = {}
LATE_S = 0.1
_USER_INDEX = itertools.count()

T = TypeVar("T")


def zipf_cdf(n: int, s: float) -> list[float]:
    """Cumulative weights of ranks 1..n with weight 1/k^s."""
    return list(itertools.accumulate(1.0 / k**s for k in range(1, n + 1)))


def pick(rng: random.Random, items: Sequence[T], cdf: Sequence[float]) -> T:
    return items[bisect.bisect_right(cdf, rng.random() * cdf[-1])]


def read_queries(path: str) -> list[str]:
    lines = Path(path).read_text().splitlines()
    return [q.strip() for q in lines if q.strip() and not q.lstrip().startswith("#")]


def _find_paths(paths: dict[str, Any]) -> dict[str, str | None]:
    def first(match: Callable[[str], bool]) -> str | None:
        found = [p for p, ops in paths.items() if "get" in ops and p.startswith(API) and match(p)]
        return min(found, key=len) if found else None

    return {
        "search": first(lambda p: p.rstrip("/").endswith("/search")),
        "search_trending": first(lambda p: p.rstrip("/").endswith("/search/trending")),
        "trending": first(lambda p: "/trending" in p and "/search/" not in p),
        "recommendations": first(lambda p: "recommend" in p),
    }


def _load_catalog(host: str, config: Config) -> Catalog:
    """What every user shares, read before the first user starts.

    Through a session whose requests no listener records: the setup is not part of the statistics.
    """
    http = FastHttpSession(host, request_event=EventHook(), user=None, network_timeout=30.0)

    def get(path: str, headers: dict[str, str] | None = None) -> Any:
        response = http.get(path, headers=headers)
        if response.status_code != 200:
            raise RuntimeError(f"GET {host}{path}: HTTP {response.status_code}")
        return response.json()

    catalog = Catalog()
    catalog.endpoints = _find_paths(get("/openapi.json").get("paths", {}))

    cursor: str | None = None
    seen_users: set[str] = set()
    while len(catalog.recipe_ids) < config.max_ids:
        params = {"fields": "id,author.id,author.username", "limit": "100"}
        if cursor:
            params["cursor"] = cursor
        body = get(f"{API}/recipes?{urllib.parse.urlencode(params)}")
        for item in body["items"]:
            catalog.recipe_ids.append(item["id"])
            catalog.recipe_authors.append(item["author"]["id"])
            if item["author"]["username"] not in seen_users:
                seen_users.add(item["author"]["username"])
                catalog.usernames.append(item["author"]["username"])
        cursor = body.get("next_cursor")
        if not cursor:
            break
    del catalog.recipe_ids[config.max_ids :], catalog.recipe_authors[config.max_ids :]
    if not catalog.recipe_ids:
        raise RuntimeError(f"{host}{API}/recipes lists no public recipe: seed the database first")
    catalog.recipe_cdf = zipf_cdf(len(catalog.recipe_ids), config.zipf_s)
    catalog.queries = read_queries(config.queries)
    catalog.query_cdf = zipf_cdf(len(catalog.queries), 1.0)

    def login(username: str) -> Account | None:
        form = urllib.parse.urlencode({"username": username, "password": PASSWORD})
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        response = http.post(f"{API}/auth/token", data=form, headers=headers)
        if response.status_code != 200:
            log.warning("login of %s: HTTP %s", username, response.status_code)
            return None
        tokens = response.json()
        me = get(f"{API}/users/me", headers=_bearer(tokens["access_token"]))
        return Account(
            username,
            me["id"],
            tokens["access_token"],
            tokens["refresh_token"],
            time.monotonic() + tokens["expires_in"] * 2 / 3,
        )

    # Only when signed-in users will run (not with --auth-share 0, nor with --only naming anonymous tasks alone).
    wanted = catalog.usernames[: config.member_accounts] if config.auth_share > 0 and Member.weight > 0 else []
    # Each login costs an argon2 verification (~0.1 s of CPU): two at a time, one per API process.
    logged_in = gevent.pool.Pool(2).map(login, wanted)
    catalog.accounts = [account for account in logged_in if account is not None]
    by_author = {account.user_id: account for account in catalog.accounts}
    for recipe_id, author_id in zip(catalog.recipe_ids, catalog.recipe_authors, strict=True):
        if (owner := by_author.get(author_id)) is not None:
            owner.recipes.append(recipe_id)
    return catalog


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# --------------------------------------------------------------------------------------------------- listeners


@events.init.add_listener
def _on_init(environment: Environment, **_: Any) -> None:
    global CONFIG, PLAN
    if environment.parsed_options is not None:
        CONFIG = Config.from_namespace(environment.parsed_options)
    PLAN = build_plan(CONFIG)
    try:
        selected = select_tasks({cls.__name__: cls.tasks for cls in USER_CLASSES}, CONFIG.only)
        weights = user_weights(CONFIG.auth_share, selected)
    except ValueError as exc:
        raise SystemExit(f"error: {exc}") from None
    for cls in USER_CLASSES:
        cls.tasks, cls.weight = selected[cls.__name__], weights[cls.__name__]
    if CONFIG.only:
        log.info("--only %s: %s", CONFIG.only, json.dumps({c.__name__: task_weights(c.tasks) for c in USER_CLASSES}))
    log.info("plan: %s", json.dumps({k: v for k, v in PLAN.as_dict(CONFIG.per_user_rate).items() if "per_s" not in k}))


@events.test_start.add_listener
def _on_test_start(environment: Environment, **_: Any) -> None:
    global CATALOG
    if CATALOG.ready_at is not None:
        return
    started = time.monotonic()
    try:
        catalog = _load_catalog(environment.host or "", CONFIG)
    except Exception:
        log.exception("setup failed: cannot read the recipe ids from %s", environment.host)
        environment.process_exit_code = 3
        if environment.runner is not None:
            gevent.spawn_later(0.1, environment.runner.quit)
        return
    available = {feature for feature, path in catalog.endpoints.items() if path}
    for user_class in (Visitor, Member):
        user_class.tasks = [t for t in user_class.tasks if getattr(t, "requires", None) in (None, *available)]
    log.info(
        "setup in %.1fs: %d recipe ids, %d usernames, %d accounts logged in, %d queries, optional endpoints %s",
        time.monotonic() - started,
        len(catalog.recipe_ids),
        len(catalog.usernames),
        len(catalog.accounts),
        len(catalog.queries),
        json.dumps(catalog.endpoints),
    )
    catalog.ready_at = time.monotonic()
    CATALOG = catalog


@events.quitting.add_listener
def _on_quitting(environment: Environment, **_: Any) -> None:
    summary = {
        **asdict(ARRIVALS),
        "expected_outcomes": dict(sorted(EXPECTED.items())),
        "per_user_rate": CONFIG.per_user_rate,
        "plan": PLAN.as_dict(CONFIG.per_user_rate),
        "endpoints": CATALOG.endpoints,
        "recipe_ids": len(CATALOG.recipe_ids),
        "accounts": len(CATALOG.accounts),
        "effective_mix": {cls.__name__: _task_shares(cls) for cls in (Visitor, Member)},
        "user_class_weights": {"Visitor": Visitor.weight, "Member": Member.weight},
    }
    prefix = getattr(environment.parsed_options, "csv_prefix", None) if environment.parsed_options else None
    if prefix:
        Path(f"{prefix}_arrivals.json").write_text(json.dumps(summary, indent=2) + "\n")
        if REQUESTS:
            lines = (f"{t:.3f},{status},{ms:.1f}" for t, status, ms in REQUESTS)
            Path(f"{prefix}_requests.csv").write_text("seconds,status,ms\n" + "\n".join(lines) + "\n")
    log.info(
        "arrivals: %d scheduled, %d late (>%.0f ms), %d dropped; expected outcomes %s",
        ARRIVALS.scheduled,
        ARRIVALS.late,
        LATE_S * 1000,
        ARRIVALS.dropped,
        json.dumps(EXPECTED),
    )


def _task_shares(user_class: type[FastHttpUser]) -> dict[str, float]:
    counts = task_weights(user_class.tasks)
    total = sum(counts.values()) or 1
    return {name: round(n / total, 4) for name, n in sorted(counts.items(), key=lambda kv: -kv[1])}


def mix_table(auth_share: float, only: str) -> dict[str, dict[str, Any]]:
    """The mix the options select: per user class its weight and its tasks' weights (the plan printer's "mix")."""
    selected = select_tasks({cls.__name__: cls.tasks for cls in USER_CLASSES}, only)
    weights = user_weights(auth_share, selected)
    return {cls: {"weight": weights[cls], "tasks": task_weights(ts)} for cls, ts in selected.items()}


def requires(feature: str) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """Marks a task that needs an optional endpoint; it is dropped from the mix when the API lacks it."""

    def mark(fn: Callable[..., None]) -> Callable[..., None]:
        fn.requires = feature  # type: ignore[attr-defined]
        return fn

    return mark


# --------------------------------------------------------------------------------------------------- the users

CARD_FIELDS = "id,title,image_url,rating,author.username"
RECIPE = f"{API}/recipes/{{recipe_id}}"
# A few names from the seed vocabulary (src/potluck/seed/data/*.json), kept here so this file runs anywhere.
CUISINES = ("italian", "mexican", "american", "chinese", "indian", "japanese", "thai", "french", "greek", "korean")
TAGS = ("weeknight", "comfort-food", "healthy", "quick", "vegetarian", "spicy", "dinner", "family-style", "dessert")
INGREDIENTS = (
    ("chicken thighs", 600, "g"),
    ("garlic", 3, "clove"),
    ("onion", 1, None),
    ("olive oil", 2, "tbsp"),
    ("canned tomatoes", 400, "g"),
    ("basil", 10, "g"),
    ("long-grain rice", 300, "g"),
    ("lime", 1, None),
    ("ginger", 20, "g"),
    ("soy sauce", 2, "tbsp"),
    ("spinach", 200, "g"),
    ("chickpeas", 400, "g"),
    ("coconut milk", 1, "can"),
    ("red bell pepper", 2, None),
)
STEPS = (
    "Heat the oil in a large pan over medium heat.",
    "Add the onion and garlic and cook until soft, about 5 minutes.",
    "Stir in the remaining ingredients and bring to a simmer.",
    "Cook, covered, for 20 minutes, stirring now and then.",
    "Season to taste and serve hot.",
)
REVIEWS = ("Loved it, will make again.", "Good, but needed more salt.", "A weeknight staple now.", "Too spicy for us.")


class PotluckUser(FastHttpUser):
    """One arrival process: Poisson iterations at CONFIG.per_user_rate, on the wall clock (see the module doc)."""

    abstract = True
    network_timeout = 10.0
    connection_timeout = 5.0

    def __init__(self, environment: Environment) -> None:
        super().__init__(environment)
        self.index = next(_USER_INDEX)
        self.rng = random.Random(CONFIG.seed * 1_000_003 + self.index)
        self.etags: dict[str, str] = {}
        self._next_at: float | None = None

    def wait_time(self) -> float:
        rate = CONFIG.per_user_rate
        now = time.monotonic()
        if self._next_at is not None:  # called after each iteration (and once in on_start, before the first)
            ARRIVALS.completed += 1
        due = (now if self._next_at is None else self._next_at) + self.rng.expovariate(rate)
        behind = now - due
        if behind > 1.0 / rate:
            ARRIVALS.dropped += int(behind * rate)
            due = now
        elif behind > LATE_S:
            ARRIVALS.late += 1
        ARRIVALS.scheduled += 1
        self._next_at = due
        return max(0.0, due - now)

    def on_start(self) -> None:
        gevent.sleep(self.wait_time())  # a random phase: users spawned together do not fire together

    # --- helpers -------------------------------------------------------------------------------------------

    def auth(self) -> dict[str, str]:
        return {}

    def zipf_recipe(self) -> int:
        return bisect.bisect_right(CATALOG.recipe_cdf, self.rng.random() * CATALOG.recipe_cdf[-1])

    def expect(self, response: Any, outcome: str, *statuses: int) -> bool:
        """Inside `catch_response`: `statuses` are answers the client is built for, not errors; True if one came.

        Anything else keeps Locust's default (a failure from 400 on, so every 5xx counts).
        """
        if response.status_code in statuses:
            response.success()
            EXPECTED[outcome] = EXPECTED.get(outcome, 0) + 1
            return True
        return False

    def get_recipe(self, recipe_id: str, params: dict[str, str] | None = None) -> Any:
        headers = self.auth()
        etag = self.etags.get(recipe_id) if params is None else None
        if etag is not None and self.rng.random() < 0.5:  # a revisit with the cached copy: 304 when unchanged
            headers = {**headers, "If-None-Match": etag}
        path = f"{API}/recipes/{recipe_id}"
        if params:
            path += "?" + urllib.parse.urlencode(params)
        response = self.client.get(path, headers=headers, name=RECIPE)
        if params is None and response.status_code == 200 and (tag := response.headers.get("etag")):
            if len(self.etags) >= 200:
                self.etags.pop(next(iter(self.etags)))
            self.etags[recipe_id] = tag
        return response

    def view_recipe(self) -> None:
        self.get_recipe(CATALOG.recipe_ids[self.zipf_recipe()])

    def view_card(self) -> None:
        self.get_recipe(CATALOG.recipe_ids[self.zipf_recipe()], {"fields": CARD_FIELDS})

    def follow_pages(self, path: str, params: dict[str, str], name: str, pages: int) -> None:
        """Page 1, then up to `pages` - 1 more by `next_cursor` (the only way to page: keyset cursors)."""
        for _ in range(pages):
            response = self.client.get(f"{path}?{urllib.parse.urlencode(params)}", headers=self.auth(), name=name)
            cursor = response.json().get("next_cursor") if response.status_code == 200 else None
            if not cursor:
                return
            params = {**params, "cursor": cursor}

    def browse(self) -> None:
        params = {"limit": "20", "fields": CARD_FIELDS}
        roll = self.rng.random()
        if roll < 0.15:
            params["cuisine"] = self.rng.choice(CUISINES)
        elif roll < 0.40:
            params["tag"] = self.rng.choice(TAGS)
        elif roll < 0.50:
            params["max_total_minutes"] = str(self.rng.choice((20, 30, 45, 60)))
        pages = self.rng.choices((1, 2, 3), weights=(60, 25, 15))[0]
        self.follow_pages(f"{API}/recipes", params, f"{API}/recipes", pages)

    def view_author(self) -> None:
        """A profile; on 40% of visits also the author's recipes (the profile page's list)."""
        author = CATALOG.recipe_authors[self.zipf_recipe()]
        self.client.get(f"{API}/users/{author}", headers=self.auth(), name=f"{API}/users/{{user_id}}")
        if self.rng.random() < 0.4:
            params = {"author": author, "limit": "20", "fields": CARD_FIELDS}
            self.follow_pages(f"{API}/recipes", params, f"{API}/recipes", self.rng.choices((1, 2), weights=(80, 20))[0])

    def search(self) -> None:
        """A query from the list (Zipf); 10% type-ahead, 25% with a filter or sort; 20% of them read page 2."""
        path = CATALOG.endpoints["search"] or f"{API}/search"
        query = pick(self.rng, CATALOG.queries, CATALOG.query_cdf)
        params = {"q": query, "limit": "20", "fields": CARD_FIELDS}
        roll = self.rng.random()
        if roll < 0.10:
            # Type-ahead: the query as typed so far (at least 3 characters), its last word matched as a prefix.
            cut = self.rng.randint(min(3, len(query)), len(query))
            params.update(q=query[:cut].rstrip(" -") or query, prefix="true", limit="8")
        elif roll < 0.35:
            key, value = self.rng.choice(SEARCH_FILTERS)
            params[key] = value if isinstance(value, str) else self.rng.choice(value)
        pages = 1 if "prefix" in params else self.rng.choices((1, 2, 3), weights=(80, 15, 5))[0]
        self.follow_pages(path, params, path, pages)

    def search_trending(self) -> None:
        path = CATALOG.endpoints["search_trending"] or f"{API}/search/trending"
        self.client.get(f"{path}?limit=10", headers=self.auth(), name=path)

    def trending(self) -> None:
        template = CATALOG.endpoints["trending"] or f"{API}/trending"
        period = self.rng.choices(PERIODS, weights=PERIOD_WEIGHTS)[0]
        path = template.replace("{period}", period)
        params = {"limit": "20", "fields": CARD_FIELDS}
        if "{period}" not in template:
            params["period"] = period
        self.client.get(f"{path}?{urllib.parse.urlencode(params)}", headers=self.auth(), name=template)

    def login(self, username: str) -> str | None:
        """POST /auth/token (an argon2 verification: ~160 ms of server CPU); the access token, None on failure."""
        body = urllib.parse.urlencode({"username": username, "password": PASSWORD})
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        response = self.client.post(f"{API}/auth/token", data=body, headers=headers, name=f"{API}/auth/token")
        if response.status_code != 200:
            return None
        token: str = response.json()["access_token"]
        return token

    def write(self, kind: str, headers: dict[str, str], *, signed_out: bool = False) -> Any:
        """One of the writes any user makes: a rating, a favorite or a new recipe."""
        recipe_id = CATALOG.recipe_ids[self.zipf_recipe()]
        if kind == "rating":
            stars = self.rng.choices((1, 2, 3, 4, 5), weights=(3, 5, 15, 37, 40))[0]
            rating: dict[str, Any] = {"stars": stars}
            if self.rng.random() < 0.3:
                rating["review"] = self.rng.choice(REVIEWS)
            request = self.client.put(
                f"{API}/recipes/{recipe_id}/rating",
                json=rating,
                headers=headers,
                name=f"{RECIPE}/rating",
                catch_response=True,
            )
        elif kind == "favorite":
            method = self.client.put if signed_out or self.rng.random() < 0.75 else self.client.delete
            request = method(
                f"{API}/recipes/{recipe_id}/favorite", headers=headers, name=f"{RECIPE}/favorite", catch_response=True
            )
        else:
            request = self.client.post(
                f"{API}/recipes", json=new_recipe(self.rng), headers=headers, name=f"{API}/recipes", catch_response=True
            )
        with request as response:
            if signed_out:
                self.expect(response, "signed-out write answered 401", 401)
            elif kind == "rating":
                # The catalog lists recipes newest first, so the Zipf head holds the ones these shared accounts
                # created in earlier runs: rating one's own recipe is refused by design (recipe/service.py).
                self.expect(response, "rating of one's own recipe answered 403", 403)
        return response


SEARCH_FILTERS: tuple[tuple[str, str | tuple[str, ...]], ...] = (
    ("cuisine", CUISINES),
    ("tag", TAGS),
    ("max_total_minutes", ("20", "30", "45", "60")),
    ("min_rating", ("3.5", "4", "4.5")),
    ("ingredient", ("garlic", "chickpeas", "eggs", "chicken thighs", "cilantro")),
    ("exclude_ingredient", ("shrimp", "bacon", "cilantro", "eggs")),
    ("sort", ("rating", "newest")),
)
PERIODS = ("day", "week", "month")
PERIOD_WEIGHTS = (50, 35, 15)
WRITES = ("rating", "favorite", "recipe")
WRITE_WEIGHTS = (60, 25, 15)


def new_recipe(rng: random.Random) -> dict[str, Any]:
    picked = rng.sample(INGREDIENTS, rng.randint(4, 8))
    return {
        "title": f"{rng.choice(('Easy', 'Weeknight', 'Smoky', 'Herby', 'Simple'))} "
        f"{rng.choice(('Chicken Rice Bowl', 'Chickpea Curry', 'Tomato Stew', 'Ginger Stir-Fry'))}",
        "description": "Load-test recipe: a simple dish from the pantry.",
        "cuisine": rng.choice(CUISINES),
        "prep_minutes": rng.choice((10, 15, 20)),
        "cook_minutes": rng.choice((15, 25, 40)),
        "servings": rng.choice((2, 4, 6)),
        "difficulty": rng.choice(("easy", "medium")),
        "is_public": rng.random() < 0.9,
        "ingredients": [{"name": n, "quantity": q, "unit": u} for n, q, u in picked],
        "steps": list(STEPS[: rng.randint(3, len(STEPS))]),
        "tags": rng.sample(TAGS, 2),
    }


class Visitor(PotluckUser):
    """Anonymous: reads public data (the cacheable path), now and then signs in or tries a write signed out."""

    weight = 80

    @task(444)
    def recipe(self) -> None:
        self.view_recipe()

    @task(60)
    def recipe_card(self) -> None:
        self.view_card()

    @task(150)
    def recipes_list(self) -> None:
        self.browse()

    @task(150)
    @requires("search")
    def search_recipes(self) -> None:
        self.search()

    @task(15)
    @requires("search_trending")
    def trending_searches(self) -> None:
        self.search_trending()

    @task(60)
    @requires("trending")
    def trending_recipes(self) -> None:
        self.trending()

    @task(115)
    def author_profile(self) -> None:
        self.view_author()

    @task(2)
    def sign_in(self) -> None:
        self.login(self.rng.choice(CATALOG.usernames))

    @task(4)
    def write_signed_out(self) -> None:
        """Rate, favorite or post signed out: 401 (expected); half of them then sign in and write again."""
        kind = self.rng.choices(WRITES, weights=WRITE_WEIGHTS)[0]
        self.write(kind, {}, signed_out=True)
        if self.rng.random() < 0.5 and (token := self.login(self.rng.choice(CATALOG.usernames))):
            self.write(kind, _bearer(token))


class Member(PotluckUser):
    """Logged in: the same reads with a token (private cache headers), personal pages, and the writes."""

    weight = 20

    def on_start(self) -> None:
        self.account = CATALOG.accounts[self.index % len(CATALOG.accounts)] if CATALOG.accounts else None
        super().on_start()

    def auth(self) -> dict[str, str]:
        account = self.account
        if account is None:
            return {}
        if time.monotonic() > account.refresh_at and not account.refreshing:
            self._refresh(account)
        return _bearer(account.access_token)

    def _refresh(self, account: Account) -> None:
        account.refreshing = True
        try:
            response = self.client.post(
                f"{API}/auth/refresh", json={"refresh_token": account.refresh_token}, name=f"{API}/auth/refresh"
            )
            if response.status_code == 200:
                tokens = response.json()
                account.access_token = tokens["access_token"]
                account.refresh_token = tokens["refresh_token"]
                account.refresh_at = time.monotonic() + tokens["expires_in"] * 2 / 3
        finally:
            account.refreshing = False

    @task(300)
    def recipe(self) -> None:
        self.view_recipe()

    @task(40)
    def recipe_card(self) -> None:
        self.view_card()

    @task(90)
    def recipes_list(self) -> None:
        self.browse()

    @task(100)
    @requires("search")
    def search_recipes(self) -> None:
        self.search()

    @task(10)
    @requires("search_trending")
    def trending_searches(self) -> None:
        self.search_trending()

    @task(30)
    @requires("trending")
    def trending_recipes(self) -> None:
        self.trending()

    @task(80)
    @requires("recommendations")
    def recommendations(self) -> None:
        template = CATALOG.endpoints["recommendations"] or f"{API}/recommendations"
        user_id = self.account.user_id if self.account else "me"
        path = template.replace("{user_id}", user_id)
        params = urllib.parse.urlencode({"limit": "20", "fields": CARD_FIELDS})
        self.client.get(f"{path}?{params}", headers=self.auth(), name=template)

    @task(50)
    def author_profile(self) -> None:
        self.view_author()

    @task(50)
    def favorites(self) -> None:
        params = {"limit": "20", "fields": CARD_FIELDS}
        pages = self.rng.choices((1, 2), weights=(85, 15))[0]
        self.follow_pages(f"{API}/users/me/favorites", params, f"{API}/users/me/favorites", pages)

    @task(25)
    def me(self) -> None:
        self.client.get(f"{API}/users/me", headers=self.auth(), name=f"{API}/users/me")

    @task(40)
    def unread_notifications(self) -> None:
        self.client.get(
            f"{API}/notifications/unread-count", headers=self.auth(), name=f"{API}/notifications/unread-count"
        )

    @task(80)
    def rate(self) -> None:
        self.write("rating", self.auth())

    @task(70)
    def favorite(self) -> None:
        self.write("favorite", self.auth())

    @task(10)
    def create_recipe(self) -> None:
        response = self.write("recipe", self.auth())
        if response.status_code == 201 and self.account is not None:
            self.account.recipes.append(response.json()["id"])

    @task(25)
    def edit_own_recipe(self) -> None:
        """GET for the ETag, PATCH with If-Match; on 412 read again and retry once, as a client should.

        The users sharing an account edit its recipes concurrently, so a 412 (someone else's edit came first, or
        the GET was answered before the other edit reached it) is an expected answer, counted apart.
        """
        if self.account is None or not self.account.recipes:
            self.create_recipe()
            return
        recipe_id = self.rng.choice(self.account.recipes)
        body: dict[str, Any] = {"description": f"Load-test recipe, edited {time.strftime('%H:%M:%S')}."}
        body[self.rng.choice(("servings", "cook_minutes"))] = self.rng.choice((2, 4, 6, 8))
        if self.rng.random() < 0.2:
            body["tags"] = self.rng.sample(TAGS, 2)
        for attempt in range(2):
            current = self.client.get(f"{API}/recipes/{recipe_id}", headers=self.auth(), name=RECIPE)
            etag = current.headers.get("etag") if current.status_code == 200 else None
            if etag is None:
                return
            headers = {**self.auth(), "If-Match": etag}
            with self.client.patch(
                f"{API}/recipes/{recipe_id}", json=body, headers=headers, name=RECIPE, catch_response=True
            ) as response:
                conflict = self.expect(response, f"edit answered 412 (attempt {attempt + 1})", 412)
            if not conflict:
                return


USER_CLASSES: tuple[type[PotluckUser], ...] = (Visitor, Member)


if __name__ == "__main__":
    cli = argparse.ArgumentParser(description="Print the load plan (what the shape runs) as JSON.")
    for option in OPTIONS:
        cli.add_argument(option.flag, type=option.type, default=os.environ.get(option.env, option.default))
    config = Config.from_namespace(cli.parse_args())
    try:
        plan = build_plan(config)
        mix = mix_table(float(config.auth_share), config.only)
    except ValueError as exc:
        sys.exit(f"error: {exc}")
    sys.stdout.write(json.dumps({**plan.as_dict(config.per_user_rate), "mix": mix}) + "\n")
