"""`expires_after` of an uploaded file and `output_expires_after` of a batch's output and
error files: `{"anchor": "created_at", "seconds": N}`, N from 1 hour to 30 days (OpenAI's
bounds), the file then expires N seconds after it was created."""

from __future__ import annotations

from collections.abc import Mapping

from headrace.errors import InvalidRequestError

SECONDS = (3600, 2_592_000)


def expiry_seconds(policy: Mapping[str, object] | None, *, param: str) -> int | None:
    """The policy's seconds, or None when none was given; a 400 naming `param` otherwise.
    `seconds` may be an int (JSON) or its digits (a multipart form field)."""
    if policy is None:
        return None
    anchor, seconds = policy.get("anchor"), policy.get("seconds")
    if anchor != "created_at":
        raise InvalidRequestError(f"{param}.anchor must be 'created_at'.", param=param)
    if isinstance(seconds, str) and seconds.isdigit():
        seconds = int(seconds)
    low, high = SECONDS
    if isinstance(seconds, bool) or not isinstance(seconds, int) or not low <= seconds <= high:
        raise InvalidRequestError(
            f"{param}.seconds must be an integer from {low} to {high}.", param=param
        )
    return seconds
