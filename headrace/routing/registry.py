"""The models this gateway serves, loaded once at start-up."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from headrace.config import ModelSettings
from headrace.engine.embedder import Embedder
from headrace.engine.interface import Engine
from headrace.engine.structured import StructuredOutputs
from headrace.engine.tokenizer import Tokenizer
from headrace.errors import NotFoundError


@dataclass(slots=True)
class ChatModel:
    settings: ModelSettings
    context_window: int
    tokenizer: Tokenizer
    engine: Engine
    structured: StructuredOutputs
    created: int


@dataclass(slots=True)
class EmbeddingModel:
    settings: ModelSettings
    context_window: int
    embedder: Embedder
    created: int


ServedModel = ChatModel | EmbeddingModel


class ModelRegistry:
    """Public model name to the loaded model behind it."""

    def __init__(self, models: Iterable[ServedModel] = ()) -> None:
        self._models: dict[str, ServedModel] = {m.settings.name: m for m in models}

    def all(self) -> list[ServedModel]:
        return list(self._models.values())

    def get(self, name: str) -> ServedModel:
        model = self._models.get(name)
        if model is None:
            raise NotFoundError(
                f"The model `{name}` does not exist or you do not have access to it.",
                param="model",
                code="model_not_found",
            )
        return model

    def chat(self, name: str) -> ChatModel:
        model = self.get(name)
        if not isinstance(model, ChatModel):
            raise NotFoundError(
                f"The model `{name}` is an embedding model and cannot generate text.",
                param="model",
                code="model_not_found",
            )
        return model

    def embedding(self, name: str) -> EmbeddingModel:
        model = self.get(name)
        if not isinstance(model, EmbeddingModel):
            raise NotFoundError(
                f"The model `{name}` does not produce embeddings.",
                param="model",
                code="model_not_found",
            )
        return model

    def close(self) -> None:
        for model in self._models.values():
            if isinstance(model, ChatModel):
                model.engine.close()


def checkpoint_context_window(model_dir: Path) -> int:
    config = json.loads((model_dir / "config.json").read_text())
    return int(config.get("max_position_embeddings", 2048))


def load_model(settings: ModelSettings) -> ServedModel:
    """Load one model's weights; slow (seconds), so callers show progress."""
    path = settings.resolved_path()
    created = int((path / "config.json").stat().st_mtime)
    window = checkpoint_context_window(path)
    if settings.context_window is not None:
        window = min(window, settings.context_window)
    if settings.kind == "embedding":
        embedder = Embedder(path, device=settings.device, max_length=min(window, 512))
        return EmbeddingModel(settings, embedder.max_length, embedder, created)
    tokenizer = Tokenizer(path)
    vocab_size = int(json.loads((path / "config.json").read_text())["vocab_size"])
    structured = StructuredOutputs(path, vocab_size, [tokenizer.eos_token_id])
    engine = _chat_engine(settings, path, tokenizer, structured)
    return ChatModel(settings, window, tokenizer, engine, structured, created)


def _chat_engine(
    settings: ModelSettings, path: Path, tokenizer: Tokenizer, structured: StructuredOutputs
) -> Engine:
    if settings.engine == "reference":
        from headrace.engine.reference import ReferenceEngine

        return ReferenceEngine(
            path, tokenizer, structured, device=settings.device, dtype=settings.dtype
        )
    from headrace.engine.llm_engine import EngineConfig, LLMEngine

    config = EngineConfig(
        device=settings.device,
        dtype=settings.dtype,
        kv_cache_bytes=settings.kv_cache_bytes,
        block_size=settings.block_size,
        max_num_seqs=settings.max_num_seqs,
        max_num_batched_tokens=settings.max_num_batched_tokens,
    )
    return LLMEngine(path, tokenizer, config, structured)


def load_registry(
    models: list[ModelSettings], on_loaded: Callable[[ModelSettings], None] | None = None
) -> ModelRegistry:
    loaded = []
    for settings in models:
        loaded.append(load_model(settings))
        if on_loaded is not None:
            on_loaded(settings)
    return ModelRegistry(loaded)
