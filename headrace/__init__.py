"""Headrace: a self-hosted, OpenAI-compatible LLM API platform."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("headrace")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0"
