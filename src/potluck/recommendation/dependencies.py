"""The recommendation domain's services, as FastAPI dependencies."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from potluck.kit.wiring import provided
from potluck.recommendation.service import RecommendationService

RecommendationServiceDep = Annotated[RecommendationService, Depends(provided(RecommendationService))]
