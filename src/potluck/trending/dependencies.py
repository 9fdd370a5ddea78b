"""The trending domain's services, as FastAPI dependencies."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from potluck.kit.wiring import provided
from potluck.trending.service import TrendingService

TrendingServiceDep = Annotated[TrendingService, Depends(provided(TrendingService))]
