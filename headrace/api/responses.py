"""JSON responses serialised once, by orjson or by pydantic's own serializer."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi.responses import Response
from pydantic import BaseModel

JSON = "application/json"


def json_response(
    content: BaseModel | dict[str, Any],
    status_code: int = 200,
    headers: dict[str, str] | None = None,
) -> Response:
    body = content.model_dump_json() if isinstance(content, BaseModel) else orjson.dumps(content)
    return Response(body, status_code=status_code, headers=headers, media_type=JSON)
