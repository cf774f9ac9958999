"""The models this gateway serves, loaded once at start-up."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from headrace.config import BUNDLED_MODELS_DIR, ModelSettings
from headrace.engine.embedder import Embedder
from headrace.engine.interface import Engine
from headrace.engine.structured import StructuredOutputs
from headrace.engine.tokenizer import Tokenizer
from headrace.errors import InvalidRequestError, NotFoundError


@dataclass(slots=True)
class ChatModel:
    settings: ModelSettings
    context_window: int
    tokenizer: Tokenizer
    engine: Engine
    structured: StructuredOutputs
    created: int
    version: str = ""  # recorded on every usage event, see `checkpoint_version`
    deployment: str = "local"  # what runs it: this process's engine


@dataclass(slots=True)
class EmbeddingModel:
    settings: ModelSettings
    context_window: int
    embedder: Embedder
    created: int
    version: str = ""
    deployment: str = "local"


@dataclass(slots=True)
class RemoteModel:
    """A model served by deployments outside this process: its requests are proxied."""

    settings: ModelSettings
    context_window: int
    # Counts tokens where the upstream's own count is not known yet (the reservation) or
    # never comes: the bundled tokenizer, an estimate for other vocabularies.
    tokenizer: Tokenizer
    created: int
    version: str = ""
    deployment: str = ""  # which one served is known per request, not per model


ServedModel = ChatModel | EmbeddingModel | RemoteModel
# A model without its own window (an upstream's) is taken to have this one.
REMOTE_CONTEXT_WINDOW = 128_000
COUNTING_TOKENIZER = BUNDLED_MODELS_DIR / "headrace-tiny-chat"


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
        """A chat model of this gateway's own (the routes that need its engine, tokenizer
        or template: the Responses API, tokenize)."""
        model = self.get(name)
        if isinstance(model, RemoteModel):
            raise InvalidRequestError(
                f"The model `{name}` runs on upstream deployments, which this endpoint "
                "does not reach: use /v1/chat/completions, /v1/completions or "
                "/v1/embeddings for it.",
                param="model",
                code="model_not_supported",
            )
        if not isinstance(model, ChatModel):
            raise NotFoundError(
                f"The model `{name}` is an embedding model and cannot generate text.",
                param="model",
                code="model_not_found",
            )
        return model

    def remote(self, name: str) -> RemoteModel | None:
        """The model if it runs on deployments elsewhere, else None (unknown ones too)."""
        model = self._models.get(name)
        return model if isinstance(model, RemoteModel) else None

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


def checkpoint_version(model_dir: Path) -> str:
    """A short digest naming the checkpoint: its config and, per weight file, the size and
    the first and last MiB (where the header and the tensors' edges are). Cheap for large
    checkpoints, and it changes when the weights do."""
    digest = hashlib.sha256((model_dir / "config.json").read_bytes())
    for weights in sorted(model_dir.glob("*.safetensors")):
        size = weights.stat().st_size
        digest.update(f"{weights.name}:{size}".encode())
        with weights.open("rb") as f:
            digest.update(f.read(1 << 20))
            f.seek(max(0, size - (1 << 20)))
            digest.update(f.read(1 << 20))
    return digest.hexdigest()[:12]


def load_model(settings: ModelSettings) -> ServedModel:
    """Load one model's weights; slow (seconds), so callers show progress."""
    if settings.path is None:
        window = settings.context_window or REMOTE_CONTEXT_WINDOW
        return RemoteModel(settings, window, Tokenizer(COUNTING_TOKENIZER), 0)
    path = settings.resolved_path()
    created = int((path / "config.json").stat().st_mtime)
    version = settings.version or checkpoint_version(path)
    deployment = f"local:{settings.engine if settings.kind == 'chat' else 'embedder'}"
    window = checkpoint_context_window(path)
    if settings.context_window is not None:
        window = min(window, settings.context_window)
    if settings.kind == "embedding":
        embedder = Embedder(path, device=settings.device, max_length=min(window, 512))
        return EmbeddingModel(settings, embedder.max_length, embedder, created, version, deployment)
    tokenizer = Tokenizer(path)
    vocab_size = int(json.loads((path / "config.json").read_text())["vocab_size"])
    structured = StructuredOutputs(path, vocab_size, [tokenizer.eos_token_id])
    engine = _chat_engine(settings, path, tokenizer, structured)
    return ChatModel(settings, window, tokenizer, engine, structured, created, version, deployment)


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
