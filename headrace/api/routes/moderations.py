"""`/v1/moderations`: the bundled moderation classifier, in OpenAI's shape."""

from __future__ import annotations

import secrets
from collections.abc import Mapping

from fastapi import APIRouter, Response

from headrace.api.state import Caller, Record, State
from headrace.errors import InvalidRequestError, NotFoundError
from headrace.protocol.moderations import (
    ImageInput,
    ModerationRequest,
    ModerationResponse,
    ModerationResult,
    TextInput,
)
from headrace.safety.moderation import CATEGORIES, MODEL_ALIASES, MODEL_NAME, Scores

router = APIRouter(tags=["moderations"])
MAX_INPUTS = 256
SERVED = (MODEL_NAME, *MODEL_ALIASES)


@router.post("/v1/moderations")
async def create_moderation(
    body: ModerationRequest, state: State, caller: Caller, response: Response, record: Record
) -> ModerationResponse:
    if body.model not in SERVED:
        raise NotFoundError(
            f"The model `{body.model}` does not exist or you do not have access to it.",
            param="model",
            code="model_not_found",
        )
    record.model = MODEL_NAME  # a bounded label, whichever alias was asked for
    texts = _texts(body.input)
    # About four characters a token: the limiter's unit, as the encoder's tokens are not ours.
    tokens = sum(len(t) for t in texts) // 4 + len(texts)
    admission = await state.limiter.admit(caller, model=MODEL_NAME, tokens=tokens)
    response.headers.update(admission.headers)
    try:
        scored = await state.safety.moderator.ascore(texts)
    finally:
        admission.release(tokens)
    thresholds = state.safety.moderator.thresholds
    return ModerationResponse(
        id=f"modr-{secrets.token_hex(12)}",
        model=body.model,
        results=[_result(s, thresholds) for s in scored],
    )


def _texts(value: str | list[str] | list[TextInput | ImageInput]) -> list[str]:
    """One text per result: each string of a list, or all the text parts of a multimodal
    array together (OpenAI answers such an array with one result)."""
    if isinstance(value, str):
        return [value]
    if not value:
        raise InvalidRequestError("'input' must not be empty.", param="input")
    if all(isinstance(v, str) for v in value):
        if len(value) > MAX_INPUTS:
            raise InvalidRequestError(f"At most {MAX_INPUTS} inputs per request.", param="input")
        return [v for v in value if isinstance(v, str)]
    parts: list[str] = []
    for i, part in enumerate(value):
        if isinstance(part, ImageInput):
            raise InvalidRequestError(
                f"'input[{i}]' is an image: this moderation model reads text only.",
                param=f"input[{i}]",
                code="unsupported_value",
            )
        if isinstance(part, TextInput):
            parts.append(part.text)
    return ["\n".join(parts)]


def _result(scores: Scores, thresholds: Mapping[str, float]) -> ModerationResult:
    flagged = set(scores.flagged(thresholds))
    return ModerationResult(
        flagged=bool(flagged),
        categories={c: c in flagged for c in CATEGORIES},
        category_scores={c: scores.values[c] for c in CATEGORIES},
        category_applied_input_types={c: ["text"] for c in CATEGORIES},
    )
