"""Authentication for a `headrace worker`: one static key, or none, like vLLM's `--api-key`.

A worker sits behind a gateway that has already authenticated the tenant; it only needs to
know the caller is that gateway.
"""

from __future__ import annotations

import hmac

from headrace.admission.auth import Principal
from headrace.errors import AuthenticationError

WORKER_PRINCIPAL = Principal(
    key_id="worker", project_id="worker", org_id="worker", scopes=("inference",)
)


class StaticKeyAuthenticator:
    def __init__(self, api_key: str | None) -> None:
        self._key = api_key

    async def authenticate(self, authorization: str | None) -> Principal:
        if self._key is None:
            return WORKER_PRINCIPAL
        scheme, _, key = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(key.strip(), self._key):
            raise AuthenticationError("Incorrect API key provided for this worker.")
        return WORKER_PRINCIPAL
