"""Structured output: grammars compiled by xgrammar, applied as a token mask per step.

`StructuredOutputs` belongs to one model (it knows the vocabulary) and compiles a
`GrammarSpec` once, cached; compiling is also how a bad schema is refused before any
compute. Each constrained sequence gets its own `Constraint`, which masks the logits
before sampling and advances with every accepted token.

xgrammar was chosen over llguidance after measuring both on this vocabulary
(`benchmarks/grammar.py`, docs/benchmarks.md).
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import torch

GrammarKind = Literal["json_object", "json_schema", "tool_call"]
_ANY_OBJECT = '{"type": "object"}'
# `json.dumps` layout, which models (ours included) are trained on. Free whitespace would let
# a weak model pad forever inside a valid document.
_LAYOUT: dict[str, Any] = {"any_whitespace": False, "separators": (", ", ": ")}


@dataclass(frozen=True, slots=True)
class GrammarSpec:
    """What the output must look like. `source` is a JSON schema (json_schema), or a JSON
    list of `{"name", "parameters"}` functions one of which must be called (tool_call)."""

    kind: GrammarKind
    source: str = ""
    parallel: bool = False  # tool_call: one or more calls

    @staticmethod
    def tool_call(functions: list[tuple[str, dict[str, Any]]], *, parallel: bool) -> GrammarSpec:
        spec = [{"name": n, "parameters": p} for n, p in functions]
        return GrammarSpec("tool_call", json.dumps(spec, sort_keys=True), parallel)


class CompiledGrammar:
    """A compiled grammar; opaque outside this module."""

    __slots__ = ("_compiled",)

    def __init__(self, compiled: Any) -> None:
        self._compiled = compiled


class Constraint:
    """One sequence's position in its grammar."""

    __slots__ = ("_bitmask", "_matcher", "_xgr")

    def __init__(self, grammar: CompiledGrammar, vocab_size: int) -> None:
        import xgrammar as xgr

        self._xgr = xgr
        self._matcher = xgr.GrammarMatcher(grammar._compiled)
        self._bitmask = xgr.allocate_token_bitmask(1, vocab_size)

    def mask(self, logits: torch.Tensor) -> None:
        """Set the logits of every token the grammar forbids next to -inf, in place."""
        self._matcher.fill_next_token_bitmask(self._bitmask, 0)
        self._xgr.apply_token_bitmask_inplace(logits, self._bitmask[0].to(logits.device))

    def accept(self, token_id: int) -> None:
        if not self._matcher.accept_token(token_id):
            raise RuntimeError(f"token {token_id} violates the grammar")

    @property
    def done(self) -> bool:
        return bool(self._matcher.is_terminated())


class StructuredOutputs:
    """Compiles grammars for one model's vocabulary."""

    def __init__(self, model_dir: Path, vocab_size: int, stop_token_ids: list[int]) -> None:
        self._model_dir = model_dir
        self.vocab_size = vocab_size
        self._stop_ids = stop_token_ids
        self._compiler: Any = None
        self._lock = threading.Lock()

    def compile(self, spec: GrammarSpec) -> CompiledGrammar:
        """Compile (cached); raises ValueError naming what is wrong with the spec."""
        return self._compile_cached(spec)

    def constraint(self, grammar: CompiledGrammar) -> Constraint:
        return Constraint(grammar, self.vocab_size)

    @lru_cache(maxsize=256)  # noqa: B019 - one instance per model, lives as long as it
    def _compile_cached(self, spec: GrammarSpec) -> CompiledGrammar:
        import xgrammar as xgr

        compiler = self._get_compiler()
        try:
            if spec.kind == "json_object":
                return CompiledGrammar(compiler.compile_json_schema(_ANY_OBJECT, **_LAYOUT))
            if spec.kind == "json_schema":
                return CompiledGrammar(compiler.compile_json_schema(spec.source, **_LAYOUT))
            return CompiledGrammar(compiler.compile_grammar(_tool_call_grammar(xgr, spec)))
        except (RuntimeError, ValueError, TypeError) as exc:
            raise ValueError(f"cannot compile the output schema: {_first_line(exc)}") from exc

    def _get_compiler(self) -> Any:
        with self._lock:
            if self._compiler is None:
                import xgrammar as xgr
                from transformers import PreTrainedTokenizerFast

                path = str(self._model_dir / "tokenizer.json")
                hf = PreTrainedTokenizerFast(tokenizer_file=path)  # type: ignore[no-untyped-call]
                info = xgr.TokenizerInfo.from_huggingface(
                    hf, vocab_size=self.vocab_size, stop_token_ids=self._stop_ids
                )
                self._compiler = xgr.GrammarCompiler(info, max_threads=1)
            return self._compiler


def _tool_call_grammar(xgr: Any, spec: GrammarSpec) -> Any:
    """`<tool_call>\\n{"name": N, "arguments": {...}}\\n</tool_call>`, arguments per schema."""
    calls = []
    for fn in json.loads(spec.source):
        schema = {
            "type": "object",
            "properties": {
                "name": {"const": fn["name"]},
                "arguments": fn["parameters"] or {"type": "object"},
            },
            "required": ["name", "arguments"],
            "additionalProperties": False,
        }
        calls.append(
            xgr.Grammar.concat(
                xgr.Grammar.from_ebnf('root ::= "<tool_call>\\n"'),
                xgr.Grammar.from_json_schema(json.dumps(schema), **_LAYOUT),
                xgr.Grammar.from_ebnf('root ::= "\\n</tool_call>"'),
            )
        )
    one = xgr.Grammar.union(*calls) if len(calls) > 1 else calls[0]
    if not spec.parallel:
        return one
    more = xgr.Grammar.concat(xgr.Grammar.from_ebnf('root ::= "\\n"'), one)
    return xgr.Grammar.union(
        one, xgr.Grammar.concat(one, more), xgr.Grammar.concat(one, more, more)
    )


def _first_line(exc: BaseException) -> str:
    lines = [ln for ln in str(exc).splitlines() if ln.strip()]
    text = lines[-1] if lines else type(exc).__name__
    # xgrammar prefixes messages with a timestamp and a source location.
    return text.split(": ", 1)[-1] if text.startswith("[") else text
