"""`potluck recommend evaluate`: measure popularity, today's formula and the model offline (registered in main.py).

Reads the whole database once (recipes, tags, ingredients, favorites, ratings, follows), splits each user's likes
by time (recommendation/evaluation.py), trains on the first part and prints precision@10, recall@10, NDCG@10,
coverage and novelty per method, then NDCG@10 by the size of the user's history (the cold-start curve).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace
from functools import partial

import numpy as np
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

from potluck.config import get_settings
from potluck.db.session import ReadSession
from potluck.recommendation.dataset import Snapshot
from potluck.recommendation.evaluation import (
    COLD_START_LIKES,
    HOLDOUT,
    MIN_LIKES,
    Context,
    K,
    Method,
    Report,
    declared_from_snapshot,
    declared_from_training,
    evaluate,
    first_likes,
    only_users,
    sample_users,
    time_split,
    with_history,
)
from potluck.recommendation.methods import (
    declared_popularity_method,
    formula_method,
    model_method,
    popularity_method,
    train_on,
)
from potluck.recommendation.model import DEFAULT_PARAMS, Model, Params
from potluck.recommendation.repository import TrainingRepository

recommend_app = typer.Typer(help="Recommendations: offline evaluation and training.", no_args_is_help=True)
_err = Console(stderr=True)
_out = Console()


async def read_snapshot(database_url: str) -> Snapshot:
    engine = create_async_engine(database_url)
    try:
        sessions = async_sessionmaker(engine, class_=ReadSession, expire_on_commit=False)
        async with sessions() as session:
            return await TrainingRepository(session).snapshot()
    finally:
        await engine.dispose()


@recommend_app.command("evaluate")
def evaluate_command(
    holdout: float = typer.Option(HOLDOUT, min=0.01, max=0.9, help="Share of each user's likes held out (latest)."),
    min_likes: int = typer.Option(MIN_LIKES, min=2, help="Users with fewer likes are not evaluated."),
    k: int = typer.Option(K, min=1, max=100, help="List length measured."),
    social: float = typer.Option(DEFAULT_PARAMS.social, help="The model's weight of followed people's likes."),
    ablations: bool = typer.Option(False, help="Also measure the model without each of its parts."),
    users: int | None = typer.Option(
        None, "--users", min=1, help="Evaluate this many users drawn at random (default: every one with enough likes)."
    ),
    seed: int = typer.Option(0, "--seed", help="Which random users --users draws."),
    cold_start: bool = typer.Option(
        False, help="Also measure NDCG with only each user's first 0, 1, 2, 3, 5 likes (with declared tastes)."
    ),
) -> None:
    """Evaluate popularity, today's formula and the trained model on the database's data (seed it first)."""
    settings = get_settings()
    started = time.perf_counter()
    with _err.status("reading the database…"):
        snapshot = asyncio.run(read_snapshot(settings.database_url))
    read_s = time.perf_counter() - started
    split = sample_users(time_split(snapshot.events, snapshot.follows, holdout, min_likes), users, seed)
    ctx = Context.of(snapshot, split)
    _err.print(
        f"{snapshot.n_items:,} recipes, {snapshot.n_users:,} users, {len(snapshot.events):,} favorited/rated pairs "
        f"(read in {read_s:.1f} s); {len(split.users):,} users evaluated, "
        f"{sum(len(t) for t in split.test.values()):,} likes held out"
    )
    params = replace(DEFAULT_PARAMS, social=social)
    started = time.perf_counter()
    model = train_on(ctx, params)
    train_s = time.perf_counter() - started
    _err.print(f"model trained in {train_s:.1f} s ({model.similar.nnz:,} neighbour links)")
    methods = [popularity_method(ctx), formula_method(ctx), model_method(ctx, model)]
    if ablations:
        for label, variant in (
            ("model, no content", replace(params, content=0.0)),
            ("model, no CF", replace(params, cf=0.0)),
            ("model, no popularity", replace(params, popular=0.0)),
            ("model, popularity undamped", replace(params, popular_damping=0.0)),
            ("model, social 0.3", replace(params, social=0.3)),
            ("model, no caps", replace(params, per_author=k, per_cuisine=k)),
        ):
            methods.append(model_method(ctx, replace(model, params=variant), label))
    reports = _run(methods, ctx, k)
    _print(reports, k)
    if cold_start:
        _cold_start(ctx, model, k)


def _cold_start(ctx: Context, model: Model, k: int) -> None:
    """NDCG@k of users with at least max(COLD_START_LIKES) training likes, cut to their first n likes."""
    cold = with_history(ctx, max(COLD_START_LIKES))
    declared = declared_from_snapshot(cold)
    if declared:  # users declared tastes (a seed made after migration 0007 has half of them do so)
        cold = only_users(cold, np.array(sorted(declared), dtype=np.int64))
        source = "declared tastes as stored (users who declared)"
    else:
        declared = declared_from_training(cold)
        source = "no declarations stored: stood in for by their top 2 cuisines, 3 tags"
    fixed = _run([popularity_method(cold), declared_popularity_method(cold, declared)], cold, k)
    rows: dict[str, list[float]] = {r.name: [r.ndcg] * len(COLD_START_LIKES) for r in fixed}
    rows["model"], rows["model + declared tastes"] = [], []
    for n in COLD_START_LIKES:
        cut = first_likes(cold, n)
        plain, with_declared = _run(
            [model_method(cut, model, f"model, {n} likes"), model_method(cut, model, f"+ declared, {n}", declared)],
            cut,
            k,
        )
        rows["model"].append(plain.ndcg)
        rows["model + declared tastes"].append(with_declared.ndcg)
    table = Table(
        title=f"NDCG@{k} with each user's first n likes only ({len(cold.split.users):,} users with "
        f"{max(COLD_START_LIKES)}+ training likes; {source})",
        title_justify="left",
    )
    table.add_column("method")
    for n in COLD_START_LIKES:
        table.add_column(f"{n} likes", justify="right")
    for name, values in rows.items():
        table.add_row(name, *(f"{v:.4f}" for v in values))
    _out.print(table)


@recommend_app.command("train")
def train_command() -> None:
    """Train the model on the whole database now and publish it (the nightly job does the same)."""
    from potluck.bootstrap import bootstrap
    from potluck.recommendation.service import TrainingReport
    from potluck.worker.runtime import worker_settings

    settings = get_settings()

    async def run() -> TrainingReport:
        container = bootstrap(worker_settings(settings))
        try:
            return await container.model_trainer.train()
        finally:
            await container.aclose()

    with _err.status("training…"):
        report = asyncio.run(run())
    _out.print(
        f"model {report.version}: {report.recipes:,} public recipes, {report.users:,} users, {report.likes:,} likes; "
        f"{report.bytes / 1e6:.1f} MB, {report.seconds:.1f} s (reading the database included)"
    )


def _run(methods: list[Method], ctx: Context, k: int) -> list[Report]:
    columns = (TextColumn("{task.description:<22}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    reports = []
    with Progress(*columns, console=_err) as bar:
        for method in methods:
            task = bar.add_task(method.name, total=len(ctx.split.users))
            reports.append(evaluate(method, ctx, k, progress=partial(bar.advance, task)))
    return reports


def _print(reports: list[Report], k: int) -> None:
    base = reports[0].ndcg or float("nan")
    table = Table(title=f"offline evaluation ({reports[0].users:,} users, last likes held out)", title_justify="left")
    for name in ("method", f"P@{k}", f"R@{k}", f"NDCG@{k}", "vs popularity", "coverage", "novelty"):
        table.add_column(name, justify="left" if name == "method" else "right")
    for r in reports:
        table.add_row(
            r.name,
            f"{r.precision:.4f}",
            f"{r.recall:.4f}",
            f"{r.ndcg:.4f}",
            f"{r.ndcg / base:.2f}",
            f"{r.coverage:.3f}",
            f"{r.novelty:.2f}",
        )
    _out.print(table)
    buckets = list(reports[0].by_history)
    curve = Table(title=f"NDCG@{k} by likes in training (cold start)", title_justify="left")
    curve.add_column("method")
    for label in buckets:
        curve.add_column(f"{label} ({reports[0].by_history[label][0]:,})", justify="right")
    for r in reports:
        curve.add_row(r.name, *(f"{r.by_history.get(b, (0, 0.0))[1]:.4f}" for b in buckets))
    _out.print(curve)


__all__ = ["Params", "recommend_app"]
