"""The command line itself: every subcommand's --help works, and the common options go anywhere."""

from __future__ import annotations

import re

import pytest

from edge.cli import build_parser, command_parsers, main

COMMANDS = [path for path, _ in command_parsers(build_parser())]


def test_the_walk_finds_nested_verbs():
    assert {("calibrate",), ("gallery", "list"), ("config", "show"), ("run",)} <= set(COMMANDS)


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_help_of_every_command(command, capsys):
    with pytest.raises(SystemExit) as done:
        main([*command, "--help"])
    assert done.value.code == 0
    assert capsys.readouterr().out.startswith(f"usage: edge {' '.join(command)}")


def test_config_before_and_after_the_subcommand(tmp_path, capsys):
    first, second = tmp_path / "a.toml", tmp_path / "b.toml"
    first.write_text('[device]\ndevice_id = "from-a"\n')
    second.write_text('[device]\ndevice_id = "from-b"\n')
    for argv, expected in (
        (["--config", str(first), "config", "show"], "from-a"),
        (["config", "show", "--config", str(first)], "from-a"),
        (["--config", str(first), "config", "show", "--config", str(second)], "from-b"),  # the later one wins
        (["-v", "config", "show", "--config", str(second)], "from-b"),
        (["config", "show", "-v"], "dev-0"),
    ):
        assert main(argv) == 0, argv
        assert re.search(rf'^device.device_id +\= "{expected}"', capsys.readouterr().out, re.M), argv


def test_verbose_after_the_subcommand_keeps_verbose_before():
    parser = build_parser()
    assert parser.parse_args(["-v", "config", "show"]).verbose
    assert parser.parse_args(["config", "show", "-v"]).verbose
    assert not parser.parse_args(["config", "show"]).verbose
