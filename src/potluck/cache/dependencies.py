"""The cache's typed dependencies for routes."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from potluck.cache.surrogate import SurrogateKeys
from potluck.kit.wiring import provided

SurrogateKeysDep = Annotated[SurrogateKeys, Depends(provided(SurrogateKeys))]
