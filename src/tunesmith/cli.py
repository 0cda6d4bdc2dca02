"""The ``tunesmith`` command line: thin wrappers that parse options and call the library.

Commands live in ``tunesmith.commands.<name>`` and are discovered automatically. Errors a user
can cause print one line and exit non-zero; ``--debug`` (or ``TUNESMITH_DEBUG=1``) shows the
traceback instead.
"""

from __future__ import annotations

import importlib
import os
import pkgutil
import sys

import typer

from tunesmith import __version__
from tunesmith.errors import TunesmithError

app = typer.Typer(
    name="tunesmith",
    help="Grow, recycle, curate and evaluate instruction-tuning datasets.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
_state = {"debug": os.environ.get("TUNESMITH_DEBUG", "") not in ("", "0")}


def _version(value: bool) -> None:
    if value:
        typer.echo(f"tunesmith {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks for errors."),
) -> None:
    """tunesmith: instruction-tuning data that is diverse, good and cheap."""
    if debug:
        _state["debug"] = True


def _register_commands() -> None:
    import tunesmith.commands as pkg

    modules = [
        importlib.import_module(f"tunesmith.commands.{info.name}")
        for info in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda m: m.name)
        if not info.name.startswith("_")
    ]
    # Two passes, so a module can add to another's group (``extend``) without importing it.
    for hook in ("register", "extend"):
        for module in modules:
            if (call := getattr(module, hook, None)) is not None:
                call(app)


_register_commands()


def main() -> None:
    """Entry point: run the app, turning user errors into one line and an exit code."""
    try:
        app()
    except TunesmithError as exc:
        if _state["debug"]:
            raise
        typer.secho(f"error: {exc}", err=True, fg=typer.colors.RED)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        typer.secho("interrupted: rerun the same command to resume", err=True)
        sys.exit(130)
