"""tokenmill as a Dataflow Flex Template (`deploy/flex_template/`).

The launcher image runs `flex_template/main.py`, which turns the template's
parameters (`--input_format=jsonl`, Dataflow's spelling) into the
`tokenmill rebuild` command line (`template_argv`) and runs it. The
template's `metadata.json` is generated from the CLI's own flags:

    python -m deploy.template > deploy/flex_template/metadata.json

This module sits above the CLI (it reads the CLI's parser); the CLI never
imports it, so imports run one way.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, Sequence

from pipelines.cli import main as cli_main, make_parser, subcommand
from transforms.errors import ConfigError

TEMPLATE_NAME = "tokenmill rebuild"
TEMPLATE_DESCRIPTION = (
    "Rebuild a tokenmill corpus: if the inputs, tokenizer, config or code changed since the version LATEST names, "
    "build a new version, verify it, point LATEST at it and prune old versions; otherwise verify the published version."
)
REQUIRED_PARAMETERS = ("input", "output")
_TRUE, _FALSE = ("true", "1", "yes"), ("false", "0", "no")


def _parameters(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    """The parser's options by template parameter name (the flag's dest: `input_format` for `--input-format`)."""
    return {a.dest: a for a in parser._actions if a.option_strings and a.dest != "help"}  # noqa: SLF001


def _is_switch(action: argparse.Action) -> bool:
    return isinstance(action, (argparse._StoreTrueAction, argparse.BooleanOptionalAction))  # noqa: SLF001


def _regex(action: argparse.Action) -> str | None:
    if _is_switch(action):
        return "^(true|false)$"
    if action.choices:
        return "^(" + "|".join(sorted(action.choices)) + ")$"
    return None


def template_metadata(parser: argparse.ArgumentParser) -> dict[str, Any]:
    """The Flex Template's metadata: one parameter per option of `parser` (the `rebuild` command)."""
    params = []
    for name, action in _parameters(parser).items():
        help_text = action.help or ""
        if isinstance(action, argparse._AppendAction):  # noqa: SLF001
            help_text += " In the template: several, separated by commas."
        if _is_switch(action):
            help_text += " In the template: true or false."
        param = {"name": name, "label": action.option_strings[0], "helpText": help_text, "isOptional": name not in REQUIRED_PARAMETERS}
        regex = _regex(action)
        if regex:
            param["regexes"] = [regex]
        params.append(param)
    return {"name": TEMPLATE_NAME, "description": TEMPLATE_DESCRIPTION, "parameters": params}


def template_argv(argv: Sequence[str], parser: argparse.ArgumentParser) -> list[str]:
    """The template launcher's arguments as `parser`'s command line.

    The launcher passes each parameter as `--name=value`; switches come as
    true/false, a repeatable flag as a comma-separated list. Anything that is
    not one of the parser's parameters (Beam's options) passes unchanged.
    """
    params = _parameters(parser)
    out: list[str] = []
    for arg in argv:
        name, eq, value = arg[2:].partition("=")
        action = params.get(name) if arg.startswith("--") and eq else None
        if action is None:
            out.append(arg)
        elif _is_switch(action):
            if value.lower() not in _TRUE + _FALSE:
                raise ConfigError(f"template parameter {name} must be true or false, got {value!r}")
            on = value.lower() in _TRUE
            if isinstance(action, argparse.BooleanOptionalAction):
                out.append(action.option_strings[0] if on else action.option_strings[1])
            elif on:
                out.append(action.option_strings[0])
        elif isinstance(action, argparse._AppendAction):  # noqa: SLF001
            out += [f"{action.option_strings[0]}={v.strip()}" for v in value.split(",") if v.strip()]
        else:
            out.append(f"{action.option_strings[0]}={value}")
    return out


def launch_template(argv: Sequence[str]) -> int:
    """What the Flex Template launcher runs: `tokenmill rebuild` with the template's parameters, on Dataflow."""
    runner = [] if any(a == "--runner" or a.startswith("--runner=") for a in argv) else ["--runner=DataflowRunner"]
    return cli_main(["rebuild", *template_argv(argv, subcommand(make_parser(), "rebuild")), *runner])


def main() -> int:
    sys.stdout.write(json.dumps(template_metadata(subcommand(make_parser(), "rebuild")), indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
