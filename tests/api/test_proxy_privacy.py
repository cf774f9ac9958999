"""A model on an upstream gets what a local model gets from the privacy stage: personal
data masked before it leaves (PII mode `mask`), restored in the answer (JSON and streams,
placeholders split across chunks included), and injected tool results blocked."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import openai
import pytest

from headrace.api.app import create_app
from headrace.config import Settings
from tests.conftest import new_key, serving
from tests.fake_upstream import FakeUpstream
from tests.fakes import INJECTION, with_tool_result

EMAIL = "alice.liddell@example.com"


@dataclass
class Masked:
    client: openai.OpenAI
    upstream: FakeUpstream

    def sent(self) -> str:
        """Everything the upstream received, as text."""
        return repr(self.upstream.requests)


@pytest.fixture
def masked(tmp_path: Path) -> Iterator[Masked]:
    upstream = FakeUpstream()
    with serving(upstream) as up_url:
        settings = Settings(
            data_dir=tmp_path,
            models=[{"name": "far", "deployments": [{"name": "u", "url": f"{up_url}/v1"}]}],
            privacy={"pii_mode": "mask", "injection_action": "block"},
        )
        secret = new_key(settings).secret
        with serving(create_app(settings)) as base:
            client = openai.OpenAI(base_url=f"{base}/v1", api_key=secret, max_retries=0)
            yield Masked(client, upstream)


def test_personal_data_leaves_as_placeholders_and_comes_back_restored(masked: Masked) -> None:
    masked.upstream.words = ["Sent to ", "<EMAIL_1>", "."]
    answer = masked.client.chat.completions.create(
        model="far", messages=[{"role": "user", "content": f"Write to {EMAIL} please."}]
    )
    assert answer.choices[0].message.content == f"Sent to {EMAIL}."
    assert EMAIL not in masked.sent()
    assert masked.upstream.requests[-1]["messages"][0]["content"] == "Write to <EMAIL_1> please."


def test_a_placeholder_split_across_chunks_is_restored_whole(masked: Masked) -> None:
    masked.upstream.words = ["Sent to ", "<EMA", "IL_1>", ". Also <EMA"]
    stream = masked.client.chat.completions.create(
        model="far",
        messages=[{"role": "user", "content": [{"type": "text", "text": f"Mail {EMAIL}"}]}],
        stream=True,
    )
    deltas = [c.choices[0].delta.content or "" for c in stream if c.choices]
    # The last tail never became a placeholder: it is shown as it was, at the end.
    assert "".join(deltas) == f"Sent to {EMAIL}. Also <EMA"
    assert "<EMA" not in deltas[1]  # held back until it could be told
    assert EMAIL not in masked.sent()
    part = masked.upstream.requests[-1]["messages"][0]["content"][0]
    assert part == {"type": "text", "text": "Mail <EMAIL_1>"}


def test_an_injected_tool_result_is_blocked_before_it_leaves(masked: Masked) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        masked.client.chat.completions.create(model="far", messages=with_tool_result(INJECTION))
    assert caught.value.code == "content_policy_violation"
    assert caught.value.param == "messages[2].content"
    assert masked.upstream.requests == []


def test_a_proxied_completion_prompt_is_masked_and_its_text_restored(masked: Masked) -> None:
    masked.upstream.words = ["Sent to ", "<EMAIL_1>", "."]
    out = masked.client.completions.create(model="far", prompt=f"Mail {EMAIL}")
    assert out.choices[0].text == f"Sent to {EMAIL}."
    assert masked.upstream.requests[-1]["prompt"] == "Mail <EMAIL_1>"
    assert EMAIL not in masked.sent()
