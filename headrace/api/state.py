"""What the request handlers share, built once by the app's lifespan."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Header, Request

from headrace.admission.auth import Authenticator, Principal
from headrace.config import Settings
from headrace.routing.registry import ModelRegistry
from headrace.storage.database import Database


@dataclass(slots=True)
class AppState:
    settings: Settings
    db: Database
    auth: Authenticator
    registry: ModelRegistry


def app_state(request: Request) -> AppState:
    state: AppState = request.app.state.headrace
    return state


async def authenticate(
    request: Request, authorization: Annotated[str | None, Header()] = None
) -> Principal:
    """The authenticate stage, as a dependency so it runs before the body is validated."""
    return await app_state(request).auth.authenticate(authorization)


State = Annotated[AppState, Depends(app_state)]
Caller = Annotated[Principal, Depends(authenticate)]
