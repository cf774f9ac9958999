"""PII modes `store` and `mask`: personal data is redacted before content is stored.

Drop-in subclasses of the conversation and response repositories: whatever route stores
items (`/v1/conversations`, `/v1/responses`), they go through here, and the project's
privacy policy (cached) decides whether they are redacted. What the caller gets back in
the response itself is not touched; only what is kept is.
"""

from __future__ import annotations

from typing import Any

from headrace.safety.pii import redact_value
from headrace.safety.privacy import PrivacyPolicies
from headrace.storage.conversations import Conversations, StoredConversation
from headrace.storage.database import Database
from headrace.storage.encryption import ContentCipher
from headrace.storage.responses import Responses, StoredResponse

STORE_REDACTED = frozenset({"store", "mask"})  # mask hides more than store, never less


class RedactingConversations(Conversations):
    def __init__(self, db: Database, cipher: ContentCipher, policies: PrivacyPolicies) -> None:
        super().__init__(db, cipher)
        self._policies = policies

    async def create(
        self,
        project_id: str,
        conversation_id: str,
        metadata: dict[str, str],
        items: list[dict[str, Any]],
        now: int,
    ) -> StoredConversation:
        kept = await _kept(self._policies, project_id, items)
        return await super().create(project_id, conversation_id, metadata, kept, now)

    async def add_items(
        self, project_id: str, conversation_id: str, items: list[dict[str, Any]], now: int
    ) -> bool:
        kept = await _kept(self._policies, project_id, items)
        return await super().add_items(project_id, conversation_id, kept, now)


class RedactingResponses(Responses):
    def __init__(self, db: Database, cipher: ContentCipher, policies: PrivacyPolicies) -> None:
        super().__init__(db, cipher)
        self._policies = policies

    async def save(
        self,
        project_id: str,
        response: StoredResponse,
        inputs: list[dict[str, Any]],
        outputs: list[dict[str, Any]],
    ) -> None:
        policy = await self._policies.for_project(project_id)
        if policy.pii_mode in STORE_REDACTED:
            kinds = policy.kinds
            response = StoredResponse(
                response.id,
                response.previous_response_id,
                response.conversation_id,
                response.status,
                redact_value(response.body, kinds),
                response.created_at,
            )
            inputs, outputs = redact_value(inputs, kinds), redact_value(outputs, kinds)
        await super().save(project_id, response, inputs, outputs)


async def _kept(
    policies: PrivacyPolicies, project_id: str, items: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    policy = await policies.for_project(project_id)
    if policy.pii_mode not in STORE_REDACTED:
        return items
    kept: list[dict[str, Any]] = redact_value(items, policy.kinds)
    return kept
