"""The settings object: defaults, YAML file, environment, validation."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from headrace.config import load_settings


def test_defaults_are_the_embedded_setup(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HEADRACE_CONFIG", raising=False)
    monkeypatch.chdir(Path(__file__).parent)  # no headrace.yaml here
    s = load_settings()
    assert s.server.host == "127.0.0.1"
    assert s.server.port == 8000
    assert s.effective_database_url.startswith("sqlite+aiosqlite:///")
    assert s.redis_url is None
    assert [m.name for m in s.models] == ["headrace-tiny-chat", "headrace-embed-minilm"]
    assert (s.models[0].resolved_path() / "config.json").exists()
    assert (s.models[1].resolved_path() / "model.safetensors").exists()


def test_yaml_file_then_environment_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "headrace.yaml"
    config.write_text("server:\n  port: 9001\n  host: 0.0.0.0\nlog_level: debug\n")
    s = load_settings(config)
    assert (s.server.port, s.server.host, s.log_level) == (9001, "0.0.0.0", "debug")
    monkeypatch.setenv("HEADRACE_SERVER__PORT", "9002")
    monkeypatch.setenv("HEADRACE_DATA_DIR", str(tmp_path / "data"))
    s = load_settings(config)
    assert s.server.port == 9002
    assert s.data_dir == tmp_path / "data"
    assert str(tmp_path / "data") in s.effective_database_url


def test_config_env_variable_names_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "other.yaml"
    config.write_text("server:\n  max_body_bytes: 1024\n")
    monkeypatch.setenv("HEADRACE_CONFIG", str(config))
    assert load_settings().server.max_body_bytes == 1024


def test_unknown_or_invalid_settings_are_refused(tmp_path: Path) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text("no_such_setting: 1\n")
    with pytest.raises(ValidationError):
        load_settings(config)
    config.write_text("server:\n  port: 70000\n")
    with pytest.raises(ValidationError):
        load_settings(config)


def test_missing_config_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        load_settings(tmp_path / "absent.yaml")


def test_example_config_is_valid() -> None:
    example = Path(__file__).parent.parent / "headrace.example.yaml"
    s = load_settings(example)
    assert s.models


def test_torch_threads_is_applied_before_models_load(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    from headrace.cli.serve import apply_runtime

    monkeypatch.setenv("HEADRACE_TORCH_THREADS", "1")
    settings = load_settings()
    assert settings.torch_threads == 1
    before = torch.get_num_threads()
    try:
        apply_runtime(settings)
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
    monkeypatch.setenv("HEADRACE_TORCH_THREADS", "0")
    with pytest.raises(ValidationError):
        load_settings()
