"""Schemathesis against our own `/openapi.json`: no request body, however odd, gets a 5xx
(the generation POSTs and the tokenizer utilities).

The chat model is the instant fake engine (the fuzzing is about the HTTP edge, not the
model); embeddings run on the real bundled MiniLM. Bodies name a served model, so they get
past the model lookup and reach the translation code. Bounded: a few hundred examples.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from headrace.api.app import create_app
from headrace.config import Settings
from headrace.routing.registry import ModelRegistry
from tests.conftest import Server, serving
from tests.fakes import FakeEngine, fake_registry

CHAT = "headrace-tiny-chat"
EMBED = "headrace-embed-minilm"


@dataclass(frozen=True)
class Target:
    base_url: str
    api_key: str


@pytest.fixture(scope="module")
def target(server: Server, registry: ModelRegistry) -> Iterator[Target]:
    """The session server's data dir (so its API key works) with a fake chat engine."""
    served = ModelRegistry([*fake_registry(FakeEngine()).all(), registry.embedding(EMBED)])
    # A second gateway on the session server's database: a replica id of its own.
    settings = server.settings.model_copy(update={"replica_id": "fuzz-target"})
    with serving(create_app(settings, served)) as base_url:
        yield Target(base_url, server.api_key)


# The description `/openapi.json` serves: building the app loads no model.
schema = schemathesis.openapi.from_dict(create_app(Settings()).openapi())
POSTS = "^(/v1/(chat/completions|completions|embeddings)|/tokenize|/detokenize)$"


@schema.include(method="POST", path_regex=POSTS).parametrize()
@settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
def test_no_server_errors(case: schemathesis.Case, target: Target) -> None:
    body: Any = case.body
    if isinstance(body, dict):
        body["model"] = EMBED if case.path.endswith("embeddings") else CHAT
        if case.path.endswith("embeddings") and isinstance(body.get("input"), list):
            body["input"] = body["input"][:8]  # the real model: keep each example quick
    response = case.call(
        base_url=target.base_url,
        headers={"Authorization": f"Bearer {target.api_key}"},
        timeout=30,
    )
    assert response.status_code < 500, (case.path, case.body, response.text)
