"""Path settings: an empty one is refused, whichever source gives it, instead of becoming "."
(for `device.state_dir`, the current folder, which the device would make private)."""

from __future__ import annotations

import stat
import typing
from pathlib import Path

import pytest

from edge.cli import main
from edge.config import ConfigError, Settings, load_settings


def holds_path(annotation: object) -> bool:
    return annotation is Path or any(holds_path(a) for a in typing.get_args(annotation))


def path_settings() -> list[tuple[str, str]]:
    """(section, key) of every setting that holds a path."""
    return [
        (section, key)
        for section, field in Settings.model_fields.items()
        for key, setting in field.annotation.model_fields.items()  # type: ignore[union-attr]
        if holds_path(setting.annotation)
    ]


@pytest.mark.parametrize(("section", "key"), path_settings(), ids=[f"{s}.{k}" for s, k in path_settings()])
@pytest.mark.parametrize("value", ["", "  "], ids=["empty", "blank"])
def test_an_empty_path_setting_is_refused(monkeypatch, tmp_path, section, key, value):
    monkeypatch.setenv(f"EDGE_{section.upper()}__{key.upper()}", value)
    with pytest.raises(ConfigError, match=f"^{section}.{key}: .*empty path"):
        load_settings()
    monkeypatch.delenv(f"EDGE_{section.upper()}__{key.upper()}")
    config = tmp_path / "edge.toml"
    config.write_text(f'[{section}]\n{key} = "{value}"\n')
    with pytest.raises(ConfigError, match=f"^{section}.{key}: .*empty path"):
        load_settings(config)


def test_run_refuses_an_empty_state_dir_from_a_flag_or_the_environment(monkeypatch, tmp_path, capsys):
    monkeypatch.chdir(tmp_path)
    tmp_path.chmod(0o755)
    gallery = tmp_path / "g.sqlite"
    for source in ("flag", "env"):
        if source == "env":
            monkeypatch.setenv("EDGE_DEVICE__STATE_DIR", "")
        flag = ["--state-dir", ""] if source == "flag" else []
        assert main(["run", "--gallery", str(gallery), *flag]) == 1
        err = capsys.readouterr().err.strip()
        assert err.startswith("edge run: device.state_dir: ") and "empty path" in err and "\n" not in err, err
    assert stat.S_IMODE(tmp_path.stat().st_mode) == 0o755 and list(tmp_path.iterdir()) == []
