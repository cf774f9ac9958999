"""Structured output: grammars compile, refuse bad schemas, and constrain the engine."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterator

import pytest

from headrace.config import BUNDLED_MODELS_DIR
from headrace.engine.interface import GenerationRequest, SamplingParams, TextDelta
from headrace.engine.llm_engine import EngineConfig, LLMEngine
from headrace.engine.structured import GrammarSpec, StructuredOutputs
from headrace.engine.tokenizer import Tokenizer

MODEL_DIR = BUNDLED_MODELS_DIR / "headrace-tiny-chat"
TOKENIZER = Tokenizer(MODEL_DIR)
SCHEMA = {
    "type": "object",
    "properties": {
        "ok": {"type": "boolean"},
        "colour": {"enum": ["red", "green", "blue"]},
    },
    "required": ["ok", "colour"],
    "additionalProperties": False,
}


@pytest.fixture(scope="module")
def engine() -> Iterator[LLMEngine]:
    eng = LLMEngine(MODEL_DIR, TOKENIZER, EngineConfig())
    yield eng
    eng.close()


def _prompt(text: str) -> tuple[int, ...]:
    return tuple(TOKENIZER.encode(f"<|im_start|>user\n{text}<|im_end|>\n<|im_start|>assistant\n"))


async def _generate(engine: LLMEngine, spec: GrammarSpec, rid: str, **kw: object) -> str:
    options: dict[str, object] = {"max_tokens": 200, "temperature": 1.0, "seed": 3} | kw
    params = SamplingParams(grammar=engine.structured.compile(spec), **options)  # type: ignore[arg-type]
    out = []
    async for ev in engine.generate(GenerationRequest(rid, _prompt("Give me JSON."), params)):
        if isinstance(ev, TextDelta):
            out.append(ev.text)
    return "".join(out)


def test_bad_schemas_are_refused_with_a_reason(engine: LLMEngine) -> None:
    structured: StructuredOutputs = engine.structured
    with pytest.raises(ValueError, match="cannot compile"):
        structured.compile(GrammarSpec("json_schema", '{"type": 12}'))
    with pytest.raises(ValueError, match="cannot compile"):
        structured.compile(GrammarSpec("json_schema", '{"$ref": "#/definitions/missing"}'))


def test_compiling_is_cached(engine: LLMEngine) -> None:
    spec = GrammarSpec("json_schema", json.dumps(SCHEMA))
    assert engine.structured.compile(spec) is engine.structured.compile(spec)


async def test_json_schema_output_validates(engine: LLMEngine) -> None:
    texts = await asyncio.gather(
        *(
            _generate(engine, GrammarSpec("json_schema", json.dumps(SCHEMA)), f"s{i}", seed=i)
            for i in range(4)
        )
    )
    for text in texts:
        value = json.loads(text)
        assert set(value) == {"ok", "colour"}
        assert isinstance(value["ok"], bool)
        assert value["colour"] in {"red", "green", "blue"}


async def test_json_object_output_parses(engine: LLMEngine) -> None:
    text = await _generate(engine, GrammarSpec("json_object"), "obj", temperature=0.0)
    assert isinstance(json.loads(text), dict)


async def test_forced_tool_call_has_the_syntax_and_schema(engine: LLMEngine) -> None:
    params = {
        "type": "object",
        "properties": {"city": {"enum": ["Paris", "Rome"]}},
        "required": ["city"],
        "additionalProperties": False,
    }
    spec = GrammarSpec.tool_call([("get_weather", params), ("noop", {})], parallel=False)
    text = await _generate(engine, spec, "tool")
    match = re.fullmatch(r"<tool_call>\n(.*)\n</tool_call>", text, re.S)
    assert match, text
    call = json.loads(match.group(1))
    assert list(call) == ["name", "arguments"]
    assert call["name"] in {"get_weather", "noop"}
    if call["name"] == "get_weather":
        assert call["arguments"]["city"] in {"Paris", "Rome"}
