"""The search domain's services, as FastAPI dependencies."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from potluck.kit.wiring import provided
from potluck.search.service import SearchService

SearchServiceDep = Annotated[SearchService, Depends(provided(SearchService))]
