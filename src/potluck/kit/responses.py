"""JSON responses from prepared data, serialized once with orjson."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson
from starlette.responses import Response


def json_response(content: Any, status_code: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    return Response(
        content=orjson.dumps(content), status_code=status_code, media_type="application/json", headers=headers
    )
