"""Admin credentials (`hr-admin-...`) to an operator, for the admin and organization APIs.

Looked up in the database on every call: the admin API is control-plane traffic, rare and
never on the inference path, and a revoked admin credential should stop working at once.
"""

from __future__ import annotations

from dataclasses import dataclass

from headrace.admission.auth import bearer_key, redact
from headrace.admission.secrets import ADMIN_KEY_PREFIX, lookup_prefix, verify_key
from headrace.errors import AuthenticationError
from headrace.storage import tenancy
from headrace.storage.database import Database


@dataclass(frozen=True, slots=True)
class Operator:
    credential_id: str
    name: str


class AdminAuthenticator:
    def __init__(self, db: Database, pepper: str) -> None:
        self._db = db
        self.pepper = pepper  # the admin API hashes the keys it creates with it

    async def authenticate(self, authorization: str | None) -> Operator:
        key = bearer_key(authorization)
        prefix = lookup_prefix(key, ADMIN_KEY_PREFIX)
        if prefix is None:
            raise AuthenticationError(
                f"Incorrect admin key provided: {redact(key)}. This endpoint needs an admin "
                f"key ({ADMIN_KEY_PREFIX}...), not a project API key."
            )
        async with self._db.session() as session:
            cred = await tenancy.find_admin_credential(session, prefix)
        if cred is None or not verify_key(key, cred.key_hash, self.pepper):
            raise AuthenticationError(f"Incorrect admin key provided: {redact(key)}.")
        if cred.revoked_at is not None:
            raise AuthenticationError("This admin key has been revoked.")
        return Operator(cred.id, cred.name)
