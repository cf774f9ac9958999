"""A model's tokenizer and chat template, read from its Hugging Face files."""

from __future__ import annotations

import json
from pathlib import Path

from tokenizers import Tokenizer as _FastTokenizer


class Tokenizer:
    """`tokenizer.json` plus what `tokenizer_config.json` says about special tokens."""

    __slots__ = ("_tok", "bos_token", "chat_template", "eos_token", "eos_token_id", "vocab_size")

    def __init__(self, model_dir: Path) -> None:
        self._tok = _FastTokenizer.from_file(str(model_dir / "tokenizer.json"))
        config = _read_json(model_dir / "tokenizer_config.json")
        template_file = model_dir / "chat_template.jinja"
        template = config.get("chat_template")
        if not isinstance(template, str) and template_file.exists():
            template = template_file.read_text()
        self.chat_template: str | None = template if isinstance(template, str) else None
        self.eos_token: str = _token_text(config.get("eos_token")) or "<|endoftext|>"
        self.bos_token: str = _token_text(config.get("bos_token")) or ""
        eos_id = self._tok.token_to_id(self.eos_token)
        if eos_id is None:
            raise ValueError(f"eos token {self.eos_token!r} is not in the vocabulary")
        self.eos_token_id: int = eos_id
        self.vocab_size: int = self._tok.get_vocab_size(with_added_tokens=True)

    def encode(self, text: str) -> list[int]:
        """Token ids of `text`; special tokens written in the text are recognised as such."""
        return list(self._tok.encode(text, add_special_tokens=False).ids)

    def count(self, text: str) -> int:
        """How many tokens `text` is, without building the list of ids."""
        return len(self._tok.encode(text, add_special_tokens=False))

    def decode(self, ids: list[int], *, skip_special_tokens: bool = True) -> str:
        return str(self._tok.decode(ids, skip_special_tokens=skip_special_tokens))

    def token_text(self, token_id: int) -> str:
        """The text one token stands for (may be a partial UTF-8 character)."""
        return str(self._tok.decode([token_id], skip_special_tokens=False))


def _read_json(path: Path) -> dict[str, object]:
    if not path.exists():
        return {}
    data = json.loads(path.read_text())
    return data if isinstance(data, dict) else {}


def _token_text(value: object) -> str | None:
    # tokenizer_config.json stores special tokens either as strings or as AddedToken dicts.
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and isinstance(value.get("content"), str):
        return str(value["content"])
    return None
