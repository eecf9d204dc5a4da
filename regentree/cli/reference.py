"""The CLI reference in Markdown, rendered from the typer app itself so that docs/cli.md cannot drift from the code.

    python -m regentree.cli.reference > docs/cli.md
"""

from __future__ import annotations

import typer

from regentree.cli import app

PROGRAM = "regentree"
REGENERATE = "python -m regentree.cli.reference > docs/cli.md"


def _cell(text: str) -> str:
    """Text fit for one Markdown table cell: one line, pipes escaped."""
    return " ".join(text.split()).replace("|", "\\|")


def _default(param) -> str:
    """How a parameter's default reads in the reference: required, off/on for flags, the value, or none."""
    if param.required:
        return "required"
    if getattr(param, "is_flag", False):
        return "on" if param.default else "off"
    if param.default is None or param.default == ():
        return "–"
    return f"`{param.default}`"


def _argument_name(param) -> str:
    """An argument as the usage line shows it: its metavar (or upper-cased name), [optional], ... when repeated."""
    name = param.metavar or param.name.upper()
    if param.nargs == -1 and not name.endswith("..."):
        name += "..."
    return name if param.required else f"[{name}]"


def _usage(name: str, command) -> str:
    """The command's usage line, built from its parameters (no terminal formatting)."""
    arguments = [_argument_name(p) for p in command.params if p.param_type_name == "argument"]
    return " ".join([PROGRAM, name, "[OPTIONS]", *arguments])


def _parameter_rows(command) -> list[str]:
    """One Markdown table row per visible argument and option: names, help, default."""
    rows = []
    for param in command.params:
        if getattr(param, "hidden", False):
            continue
        if param.param_type_name == "argument":
            names = f"`{_argument_name(param)}`"
        else:
            names = ", ".join(f"`{opt}`" for opt in [*param.opts, *param.secondary_opts])
        rows.append(f"| {names} | {_cell(getattr(param, 'help', None) or '')} | {_default(param)} |")
    return rows


def _command_section(name: str, command) -> list[str]:
    """The Markdown section of one command: heading, docstring, usage and its parameter table."""
    lines = [f"## `{PROGRAM} {name}`", "", (command.help or "").strip(), "", "```text", _usage(name, command), "```", ""]
    rows = _parameter_rows(command)
    if rows:
        lines += ["| argument / option | help | default |", "|---|---|---|", *rows, ""]
    return lines


def render_reference() -> str:
    """Markdown for every command of the `regentree` app, in alphabetical order."""
    group = typer.main.get_command(app)
    lines = [f"# `{PROGRAM}` command reference", "",
             f"Generated from the typer app by `{REGENERATE}`; do not edit by hand.", "",
             (group.help or "").strip(), "",
             "Every command takes `--help`. Bad input ends with one line `error: ...` on stderr and exit code 2.", ""]
    for name in sorted(group.commands):
        command = group.commands[name]
        if not command.hidden:
            lines += _command_section(name, command)
    return "\n".join(lines).rstrip() + "\n"


if __name__ == "__main__":
    print(render_reference(), end="")
