"""Setting and reading the rate limits of an org, a project or a key."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from headrace.admission.limits import Limits, Scope
from headrace.errors import InvalidRequestError, NotFoundError
from headrace.storage import audit
from headrace.storage import limits as limit_rows
from headrace.storage.database import Database
from headrace.storage.schema import ApiKey, LimitRow, Organisation, Project

MAX_MODEL_NAME = 200
# A budget above this is a typo, not a plan; it also keeps nano-USD sums in 64 bits.
MAX_BUDGET_USD = 1_000_000_000.0
_BUDGETS = ("spend_per_day_usd", "spend_per_month_usd")
_TABLES: dict[Scope, type[Organisation] | type[Project] | type[ApiKey]] = {
    "org": Organisation,
    "project": Project,
    "key": ApiKey,
}


@dataclass(frozen=True, slots=True)
class ScopeLimits:
    scope: Scope
    scope_id: str
    limits: Limits
    model: str = ""  # "": all models


def check_limits(limits: Limits, *, model: str = "") -> None:
    """400 naming the first limit that is not a positive whole number, or the first budget
    that is not a positive amount of USD (None: no limit)."""
    for name, value in asdict(limits).items():
        if name in _BUDGETS:
            _check_budget(name, value, model)
        elif value is not None and (isinstance(value, bool) or value < 1):
            raise InvalidRequestError(
                f"'{name}' must be a positive integer or null, got {value!r}.",
                param=name,
                code="invalid_value",
            )


def _check_budget(name: str, value: float | None, model: str) -> None:
    if value is None:
        return
    if model:
        raise InvalidRequestError(
            f"'{name}' applies to all models: set it without a model.",
            param=name,
            code="invalid_value",
        )
    if isinstance(value, bool) or not (0 < value <= MAX_BUDGET_USD):  # also rejects NaN
        raise InvalidRequestError(
            f"'{name}' must be a positive amount of USD up to {MAX_BUDGET_USD:.0f} or null, "
            f"got {value!r}.",
            param=name,
            code="invalid_value",
        )


async def set_limits(
    db: Database,
    scope: Scope,
    scope_id: str,
    limits: Limits,
    *,
    model: str = "",
    actor: audit.Actor = audit.SYSTEM,
) -> ScopeLimits:
    """Replace a scope's limits for `model` ("": all models; all None clears them).
    Every replica sees the change within `limits.cache_ttl_s`."""
    if scope not in _TABLES:
        raise InvalidRequestError(f"Unknown scope {scope!r}.", param="scope")
    check_limits(limits, model=model)
    if len(model) > MAX_MODEL_NAME:
        raise InvalidRequestError("'model' is too long.", param="model")
    async with db.session.begin() as session:
        if await session.get(_TABLES[scope], scope_id) is None:
            raise NotFoundError(f"No {scope} with id {scope_id!r}.", param=f"{scope}_id")
        old = await limit_rows.get_limits(session, [(scope, scope_id)])
        before = next((asdict(_row_limits(r)) for r in old if r.model == model), None)
        await limit_rows.set_limits(session, scope, scope_id, model=model, **asdict(limits))
        await audit.record(
            session,
            actor,
            "limits.set",
            audit.Target("limits", f"{scope}:{scope_id}:{model}"),
            before=before,
            after={"scope": scope, "scope_id": scope_id, "model": model, **asdict(limits)},
        )
    return ScopeLimits(scope, scope_id, limits, model)


async def get_limits(db: Database, scope: Scope, scope_id: str) -> list[ScopeLimits]:
    """A scope's limits: the all-models ones first (empty when unset), then per model."""
    async with db.session() as session:
        if await session.get(_TABLES[scope], scope_id) is None:
            raise NotFoundError(f"No {scope} with id {scope_id!r}.", param=f"{scope}_id")
        rows = await limit_rows.get_limits(session, [(scope, scope_id)])
    found = [
        ScopeLimits(
            scope,
            scope_id,
            _row_limits(row),
            row.model,
        )
        for row in rows
    ]
    if not any(s.model == "" for s in found):
        found.insert(0, ScopeLimits(scope, scope_id, Limits()))
    return found


def _row_limits(row: LimitRow) -> Limits:
    return Limits(
        row.requests_per_minute,
        row.tokens_per_minute,
        row.max_concurrent_requests,
        row.tokens_per_day,
        row.spend_per_day_usd,
        row.spend_per_month_usd,
    )
