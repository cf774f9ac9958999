"""The ChatML chat template of headrace-tiny-chat and a renderer for it.

The template is the single source of truth for how conversations become text:
the corpus generator, the tokenizer trainer, the training loop and the eval all
render through :func:`render`, and the same string is shipped in
``tokenizer_config.json`` so that ``tokenizer.apply_chat_template`` (and the
Headrace server, which may use plain ``jinja2``) produce identical prompts.

Only plain Jinja features plus the ``tojson`` filter are used.  Every tag strips
surrounding whitespace and newlines are emitted explicitly, so the output does
not depend on the ``trim_blocks``/``lstrip_blocks`` settings of the environment.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment

BOS_TOKEN = "<|endoftext|>"
IM_START = "<|im_start|>"
IM_END = "<|im_end|>"
TOOL_CALL_START = "<tool_call>"
TOOL_CALL_END = "</tool_call>"

#: Text the template puts in a system message it has to create for tools.
DEFAULT_SYSTEM = "You are a helpful assistant."

#: Instruction appended after the tool list (kept short: the context is small).
TOOL_INSTRUCTION = (
    'To call a tool, reply with <tool_call>{"name": <name>, "arguments": <args>}</tool_call>'
)

# The template is assembled from readable pieces; the shipped string is the join.
_TEMPLATE_PARTS: tuple[str, ...] = (
    # Text of a message: a string, or OpenAI content parts (only text parts kept).
    "{%- macro text(content) -%}",
    "{%- if content is none -%}",
    "{%- elif content is string -%}{{ content }}",
    "{%- else -%}{%- for part in content -%}",
    "{%- if part.type == 'text' -%}{{ part.text }}{%- endif -%}",
    "{%- endfor -%}{%- endif -%}",
    "{%- endmacro -%}",
    # The tools block appended to the system message.
    "{%- macro tools_block(tools) -%}",
    "{{ '\\n\\n# Tools\\n<tools>\\n' }}",
    "{%- for tool in tools -%}",
    "{%- if tool.function is defined -%}{{ tool.function | tojson }}",
    "{%- else -%}{{ tool | tojson }}{%- endif -%}{{ '\\n' }}",
    "{%- endfor -%}",
    "{{ '</tools>\\n" + TOOL_INSTRUCTION + "' }}",
    "{%- endmacro -%}",
    # System message: the first system/developer message, or one made for tools.
    "{%- set first = messages[0] if messages else none -%}",
    "{%- if first is not none and first.role in ['system', 'developer'] -%}",
    "{{ '<|im_start|>system\\n' }}{{ text(first.content) }}",
    "{%- if tools -%}{{ tools_block(tools) }}{%- endif -%}",
    "{{ '<|im_end|>\\n' }}",
    "{%- set rest = messages[1:] -%}",
    "{%- else -%}",
    "{%- if tools -%}",
    "{{ '<|im_start|>system\\n" + DEFAULT_SYSTEM + "' }}",
    "{{ tools_block(tools) }}{{ '<|im_end|>\\n' }}",
    "{%- endif -%}",
    "{%- set rest = messages -%}",
    "{%- endif -%}",
    # The remaining turns.
    "{%- for message in rest -%}",
    "{%- set role = 'system' if message.role == 'developer' else message.role -%}",
    "{{ '<|im_start|>' + role + '\\n' }}",
    "{%- if role == 'assistant' and message.tool_calls -%}",
    "{%- set content = text(message.content) -%}",
    "{%- if content -%}{{ content }}{{ '\\n' }}{%- endif -%}",
    "{%- for call in message.tool_calls -%}",
    "{%- set fn = call.function if call.function is defined else call -%}",
    "{%- if not loop.first -%}{{ '\\n' }}{%- endif -%}",
    "{{ '<tool_call>\\n{\"name\": ' }}{{ fn.name | tojson }}{{ ', \"arguments\": ' }}",
    "{%- if fn.arguments is string -%}{{ fn.arguments }}",
    "{%- else -%}{{ fn.arguments | tojson }}{%- endif -%}",
    "{{ '}\\n</tool_call>' }}",
    "{%- endfor -%}",
    "{%- else -%}{{ text(message.content) }}",
    "{%- endif -%}",
    "{{ '<|im_end|>\\n' }}",
    "{%- endfor -%}",
    "{%- if add_generation_prompt -%}{{ '<|im_start|>assistant\\n' }}{%- endif -%}",
)

CHAT_TEMPLATE: str = "".join(_TEMPLATE_PARTS)


def _tojson(
    value: Any,
    ensure_ascii: bool = False,
    indent: int | None = None,
    separators: tuple[str, str] | None = None,
    sort_keys: bool = False,
) -> str:
    """``tojson`` as transformers defines it: plain ``json.dumps`` keeping key order."""
    return json.dumps(
        value, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys
    )


def _make_environment() -> jinja2.Environment:
    """A sandboxed environment configured like ``transformers`` renders templates."""
    env = ImmutableSandboxedEnvironment(
        trim_blocks=True, lstrip_blocks=True, extensions=["jinja2.ext.loopcontrols"]
    )
    env.filters["tojson"] = _tojson
    return env


_COMPILED = _make_environment().from_string(CHAT_TEMPLATE)


def render(
    messages: Sequence[Mapping[str, Any]],
    tools: Sequence[Mapping[str, Any]] | None = None,
    add_generation_prompt: bool = False,
) -> str:
    """Render ``messages`` (OpenAI format) and optional ``tools`` to prompt text."""
    return _COMPILED.render(
        messages=list(messages),
        tools=list(tools) if tools else None,
        add_generation_prompt=add_generation_prompt,
        bos_token=BOS_TOKEN,
        eos_token=IM_END,
    )


def format_tool_call(name: str, arguments: Mapping[str, Any]) -> str:
    """The exact text of an assistant turn calling ``name`` with ``arguments``."""
    return (
        f"{TOOL_CALL_START}\n"
        f"{json.dumps({'name': name, 'arguments': dict(arguments)}, ensure_ascii=False)}\n"
        f"{TOOL_CALL_END}"
    )
