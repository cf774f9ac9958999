"""The prompt registry: named prompts with immutable, numbered versions, and their use.

    create("support", "You help customers of {{company}}.")   # version 1, current
    add_version("support", "...")                              # version 2, not yet current
    promote("support", 2)                                      # references without a version
    await resolver.resolve("support", None, {"company": "Acme"}) -> the text of version 2

Text holds `{{name}}` placeholders; a reference must give every one of them a value.
Versions never change once written, so the resolver caches them for good; which version is
current is cached for `ttl_s`, like every other control-plane value the data plane reads.
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

from headrace.errors import InvalidRequestError, NotFoundError
from headrace.storage import prompts as rows
from headrace.storage.database import Database
from headrace.storage.prompts import PromptInfo, PromptVersion

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,199}$")
_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
MAX_PROMPT_CHARS = 256 * 1024

__all__ = ["PromptInfo", "PromptResolver", "PromptVersion", "ResolvedPrompt"]


@dataclass(frozen=True, slots=True)
class ResolvedPrompt:
    id: str
    version: int
    text: str  # with the variables substituted


def variables_of(text: str) -> list[str]:
    """The placeholder names in `text`, in order of first use."""
    return list(dict.fromkeys(_PLACEHOLDER.findall(text)))


def render(text: str, variables: dict[str, str]) -> str:
    """`text` with each `{{name}}` replaced; every placeholder needs a value, and a value
    for a name the text does not use is refused (a typo would otherwise pass silently)."""
    wanted = variables_of(text)
    missing = [n for n in wanted if n not in variables]
    if missing:
        raise InvalidRequestError(
            f"Missing prompt variable(s): {', '.join(missing)}.", param="prompt.variables"
        )
    unknown = [n for n in variables if n not in wanted]
    if unknown:
        raise InvalidRequestError(
            f"Unknown prompt variable(s): {', '.join(unknown)}.", param="prompt.variables"
        )
    return _PLACEHOLDER.sub(lambda m: variables[m.group(1)], text)


async def create(db: Database, name: str, text: str) -> PromptVersion:
    _check(name, text)
    if await rows.get_version(db, name) is not None:
        raise InvalidRequestError(f"A prompt named {name!r} already exists.", param="name")
    prompt_id = f"pmpt_{secrets.token_hex(16)}"
    return await rows.create_prompt(db, prompt_id, name, text, variables_of(text), _now())


async def add_version(db: Database, ref: str, text: str) -> PromptVersion:
    _check(None, text)
    created = await rows.add_version(db, ref, text, variables_of(text), _now())
    if created is None:
        raise NotFoundError(f"No prompt found with id or name {ref!r}.", param="prompt_id")
    return created


async def promote(db: Database, ref: str, version: int) -> PromptVersion:
    promoted = await rows.promote(db, ref, version)
    if promoted is None:
        raise NotFoundError(f"Prompt {ref!r} has no version {version}.", param="version")
    return promoted


async def show(db: Database, ref: str) -> list[PromptVersion]:
    versions = await rows.list_versions(db, ref)
    if versions is None:
        raise NotFoundError(f"No prompt found with id or name {ref!r}.", param="prompt_id")
    return versions


async def list_prompts(db: Database) -> list[PromptInfo]:
    return await rows.list_prompts(db)


class PromptResolver:
    """The data plane's view of the registry, cached (see the module docstring)."""

    def __init__(
        self, db: Database, *, ttl_s: float = 1.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._db = db
        self._ttl = ttl_s
        self._clock = clock
        self._versions: dict[tuple[str, int], PromptVersion] = {}
        self._current: dict[str, tuple[float, PromptVersion]] = {}

    async def resolve(
        self, ref: str, version: str | None, variables: dict[str, str] | None
    ) -> ResolvedPrompt:
        found = await self._lookup(ref, _version_number(version))
        return ResolvedPrompt(
            found.prompt_id, found.version, render(found.instructions, variables or {})
        )

    async def _lookup(self, ref: str, version: int | None) -> PromptVersion:
        now = self._clock()
        if version is None:
            cached = self._current.get(ref)
            if cached is not None and now - cached[0] < self._ttl:
                return cached[1]
        elif (ref, version) in self._versions:
            return self._versions[(ref, version)]
        found = await rows.get_version(self._db, ref, version)
        if found is None:
            which = "" if version is None else f" version {version}"
            raise NotFoundError(f"Prompt {ref!r}{which} not found.", param="prompt.id")
        if version is None:
            self._current[ref] = (now, found)
        else:
            self._versions[(ref, version)] = found
        return found


def _version_number(version: str | None) -> int | None:
    if version is None:
        return None
    if not version.isdigit() or int(version) < 1:
        raise InvalidRequestError(
            f"prompt.version must be a positive integer, got {version!r}.", param="prompt.version"
        )
    return int(version)


def _check(name: str | None, text: str) -> None:
    if name is not None and not _NAME.match(name):
        raise InvalidRequestError(
            "Prompt names are 1 to 200 letters, digits, '_', '.' or '-'.", param="name"
        )
    if not text.strip() or len(text) > MAX_PROMPT_CHARS:
        raise InvalidRequestError(
            f"Prompt text must be 1 to {MAX_PROMPT_CHARS} characters.", param="instructions"
        )


def _now() -> int:
    return int(time.time())
