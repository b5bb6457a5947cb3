"""Where a setting comes from: config.yaml < MOORAGE_<KEY> < explicit overrides (CLI flags)."""

from __future__ import annotations

from pathlib import Path

import pytest

from moorage.config import load_settings
from moorage.errors import ConfigError


def _file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(f"DATA_DIR: {tmp_path / 'data'}\n{text}")
    return path


def test_environment_beats_the_file_and_flags_beat_both(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _file(tmp_path, "HTTP_PORT: 7000\nHTTP_HOST: 127.0.0.2\nREPO_MIRROR_INTERVAL: 45\n")
    settings = load_settings(path)
    assert (settings.HTTP_PORT, settings.HTTP_HOST, settings.REPO_MIRROR_INTERVAL) == (
        7000,
        "127.0.0.2",
        45,
    )
    monkeypatch.setenv("MOORAGE_HTTP_PORT", "9000")
    assert load_settings(path).HTTP_PORT == 9000
    flagged = load_settings(path, HTTP_PORT=8081)  # `moorage serve --port 8081`
    assert (flagged.HTTP_PORT, flagged.HTTP_HOST, flagged.REPO_MIRROR_INTERVAL) == (
        8081,
        "127.0.0.2",
        45,
    )


def test_bad_values_name_their_key_wherever_they_come_from(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(ConfigError, match="HTTP_PORT"):
        load_settings(_file(tmp_path, "HTTP_PORT: nope\n"))
    monkeypatch.setenv("MOORAGE_REPO_MIRROR_INTERVAL", "soon")
    with pytest.raises(ConfigError, match="REPO_MIRROR_INTERVAL"):
        load_settings(_file(tmp_path, ""))
    monkeypatch.delenv("MOORAGE_REPO_MIRROR_INTERVAL")
    with pytest.raises(ConfigError, match="HTTP_PORT"):
        load_settings(_file(tmp_path, ""), HTTP_PORT=70000)


def test_keys_moorage_does_not_know_are_ignored(tmp_path: Path) -> None:
    """A Quay config.yaml carries many keys Moorage has no use for."""
    settings = load_settings(_file(tmp_path, "HTTP_PORT: 7001\nBUILDLOGS_REDIS: {host: x}\n"))
    assert settings.HTTP_PORT == 7001
