"""Load shedding: a full engine queue refuses new work at once with 503 and Retry-After,
batch work first."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from headrace.api.app import create_app
from headrace.config import Settings
from tests.conftest import new_key, serving
from tests.fakes import FakeEngine, fake_registry

MODEL = "headrace-tiny-chat"
ASK = [{"role": "user", "content": "Hi"}]


@pytest.fixture
def loaded(tmp_path: Path) -> Iterator[tuple[openai.OpenAI, FakeEngine]]:
    settings = Settings(data_dir=tmp_path)
    secret = new_key(settings).secret
    engine = FakeEngine()
    with serving(create_app(settings, fake_registry(engine, max_waiting=4))) as base:
        yield openai.OpenAI(base_url=f"{base}/v1", api_key=secret, max_retries=0), engine


def test_a_full_queue_sheds_new_requests_batch_first(
    loaded: tuple[openai.OpenAI, FakeEngine],
) -> None:
    client, engine = loaded
    engine.waiting = 2  # half full: interactive goes on, batch (flex) is refused
    assert client.chat.completions.create(model=MODEL, messages=ASK).choices
    with pytest.raises(openai.InternalServerError) as batch:
        client.chat.completions.create(model=MODEL, messages=ASK, service_tier="flex")
    assert batch.value.status_code == 503
    engine.waiting = 4  # full: everyone is refused, with a hint when to come back
    with pytest.raises(openai.InternalServerError) as err:
        client.completions.create(model=MODEL, prompt="Hi")
    assert err.value.status_code == 503
    assert err.value.response.headers["retry-after"] == "1"
    assert err.value.response.json()["error"]["code"] == "overloaded"
    engine.waiting = 0
    assert client.chat.completions.create(model=MODEL, messages=ASK, service_tier="flex").choices
