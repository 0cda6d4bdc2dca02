"""``generate METHOD ...`` for methods whose arguments are not seed tasks.

Instruction backtranslation reads unlabelled documents and Dynosaur reads datasets, so their
commands take their own positional argument and options. ``generate`` hands the rest of the
command line to such a method's own command (a typer app in ``commands/<module>.py``) before
parsing anything itself, so ``tunesmith generate backtranslate --help`` shows that method's
options. A method added here needs no other change to ``generate``.
"""

from __future__ import annotations

import importlib
from typing import Any

import typer
from typer.core import TyperCommand

#: method name -> module holding its typer ``app`` (one command).
OWN_COMMANDS = {
    "backtranslate": "tunesmith.commands.generate_backtranslate",
    "dynosaur": "tunesmith.commands.generate_dynosaur",
}


def method_command(method: str) -> Any:
    """The (typer-vendored) click command of a method listed in :data:`OWN_COMMANDS`."""
    module = importlib.import_module(OWN_COMMANDS[method])
    return typer.main.get_command(module.app)


class MethodDispatch(TyperCommand):
    """The ``generate`` command: hands ``generate <own method> ...`` to that method's command."""

    def make_context(
        self,
        info_name: str | None,
        args: list[str],
        parent: Any = None,
        **extra: Any,
    ) -> Any:
        if args and args[0] in OWN_COMMANDS:
            command = method_command(args[0])
            name = f"{info_name} {args[0]}" if info_name else args[0]
            return command.make_context(name, list(args[1:]), parent=parent, **extra)
        return super().make_context(info_name, args, parent=parent, **extra)
