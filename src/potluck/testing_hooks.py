"""Fault injection over HTTP, mounted only when POTLUCK_CACHE__TEST_HOOKS is true (never in production).

Lets a test pause one API process's reader between its database read and its cache fill.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from potluck.cache.cache import FaultInjection
from potluck.kit.wiring import provided

router = APIRouter(prefix="/_test", include_in_schema=False)


class PauseBeforeFill(BaseModel):
    key: str = Field(max_length=200)
    seconds: float = Field(gt=0, le=30)


@router.put("/faults/pause-before-fill", status_code=204)
async def pause_before_fill(
    body: PauseBeforeFill, faults: Annotated[FaultInjection, Depends(provided(FaultInjection))]
) -> None:
    faults.pause_before_fill[body.key] = body.seconds
