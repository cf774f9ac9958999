"""Every error leaves as the OpenAI envelope with the right status, from this one place."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from headrace.api.responses import json_response
from headrace.engine.interface import EngineError, RequestRejected
from headrace.errors import HeadraceError, InvalidRequestError, NotFoundError, unexpected_error
from headrace.observability.logging import get_logger
from headrace.observability.metrics import rejection_reason

log = get_logger("headrace.api")


def error_response(exc: HeadraceError) -> Response:
    return json_response(exc.envelope(), status_code=exc.status_code, headers=exc.headers)


def _param(loc: tuple[Any, ...]) -> str | None:
    """`("body", "messages", 0, "content")` -> `messages[0].content`; `("query", "x")` -> `x`."""
    parts = [p for p in loc if p not in ("body", "query", "path")]
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        elif "[" in str(part) or "-" in str(part):  # pydantic's union-branch tags
            continue
        else:
            out += f".{part}" if out else str(part)
    return out or None


def validation_error(exc: RequestValidationError) -> HeadraceError:
    """The first validation problem, phrased as OpenAI phrases its 400s."""
    errors = exc.errors()
    first = errors[0] if errors else {}
    kind, loc = first.get("type", ""), tuple(first.get("loc", ()))
    param = _param(loc)
    if kind == "json_invalid":
        return InvalidRequestError(
            "We could not parse the JSON body of your request. (HINT: This likely means you "
            "aren't using your HTTP library correctly. The OpenAI API expects a JSON payload.)"
        )
    if kind == "extra_forbidden":
        return InvalidRequestError(
            f"Unrecognized request argument supplied: {param}", param=param, code=None
        )
    if kind == "missing":
        return InvalidRequestError(f"Missing required parameter: '{param}'.", param=param)
    message = first.get("msg", "Invalid request")
    return InvalidRequestError(
        f"Invalid value for '{param}': {message}." if param else f"{message}.",
        param=param,
        code="invalid_value" if param else None,
    )


def install_error_handlers(app: FastAPI) -> None:
    async def on_headrace(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HeadraceError)
        _note_rejection(request, rejection_reason(exc))
        return error_response(exc)

    async def on_validation(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        _note_rejection(request, "validation")
        return error_response(validation_error(exc))

    async def on_http(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        if exc.status_code == 404:
            err: HeadraceError = NotFoundError(
                f"Invalid URL ({request.method} {request.url.path})", code="unknown_url"
            )
        else:
            err = HeadraceError(str(exc.detail))
            err.status_code = exc.status_code
            err.error_type = "invalid_request_error" if exc.status_code < 500 else "server_error"
        return error_response(err)

    async def on_unexpected(request: Request, exc: Exception) -> Response:
        log.exception("unhandled_error", path=request.url.path)
        return error_response(unexpected_error())

    async def on_engine(request: Request, exc: Exception) -> Response:
        # Handled here rather than by the catch-all, which Starlette re-raises after
        # answering: that would also drop the client's keep-alive connection.
        if isinstance(exc, RequestRejected):
            return error_response(InvalidRequestError(str(exc)))
        log.error("engine_error", path=request.url.path, error=str(exc))
        return error_response(HeadraceError(f"The model failed to generate: {exc}"))

    app.add_exception_handler(HeadraceError, on_headrace)
    app.add_exception_handler(EngineError, on_engine)
    app.add_exception_handler(RequestRejected, on_engine)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(Exception, on_unexpected)


def _note_rejection(request: Request, reason: str) -> None:
    """Tell the request's telemetry why it was refused (metrics count refusals by reason)."""
    record = getattr(request.state, "record", None)
    if record is not None and reason:
        record.rejection = reason
