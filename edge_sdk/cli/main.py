"""The ``edge-sdk`` command line: one entry point, one module per subcommand group.

Each group lives in ``edge_sdk/cli/<name>_cmd.py`` and exposes a ``click`` group or command named
``cli``. Server-side groups (``data generate``, ``distill``, ``quantize``, ``export-graph``) import
``edge_sdk.server`` (torch) *inside* the command body, so ``edge-sdk --help`` and the device commands work
on a device without torch.

Errors: every command turns the package's typed errors into one line on stderr and a non-zero exit code
(no traceback); set ``EDGE_SDK_DEBUG=1`` to see the traceback.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from collections.abc import Iterator

import click

from edge_sdk._version import __version__

#: (module, attribute) of each subcommand, in help order
SUBCOMMANDS: dict[str, str] = {
    "payload": "edge_sdk.cli.payload_cmd",
    "data": "edge_sdk.cli.data_cmd",
    "distill": "edge_sdk.cli.distill_cmd",
    "quantize": "edge_sdk.cli.quantize_cmd",
    "export-graph": "edge_sdk.cli.graph_cmd",
    "device": "edge_sdk.cli.device_cmd",
    "store": "edge_sdk.cli.store_cmd",
    "serve": "edge_sdk.cli.serve_cmd",
    "token": "edge_sdk.cli.token_cmd",
    "fleet": "edge_sdk.cli.fleet_cmd",
}


class LazyGroup(click.Group):
    """A click group that imports a subcommand's module only when it is listed or invoked."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return [name for name, mod in SUBCOMMANDS.items() if importlib.util.find_spec(mod) is not None]

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        mod_name = SUBCOMMANDS.get(cmd_name)
        if mod_name is None or importlib.util.find_spec(mod_name) is None:
            return None
        return importlib.import_module(mod_name).cli


#: -h as well as --help everywhere (inherited by every subcommand); help text up to 100 columns wide
CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


@click.group(cls=LazyGroup, context_settings=CONTEXT_SETTINGS)
@click.version_option(__version__, "--version", prog_name="edge-sdk")
def cli() -> None:
    """edge-sdk: move training data to edge devices in as few bits as possible."""


def iter_commands() -> Iterator[tuple[list[str], click.Command]]:
    """Every visible command as ``(argv path, command)``, e.g. ``(["payload", "keygen"], <Command>)``, root
    first, in help order; walked through the contexts click builds when it parses a command line (so inherited
    context settings apply). Used by the CLI docs generator and the docs tests."""

    def walk(cmd: click.Command, ctx: click.Context, path: list[str]) -> Iterator[tuple[list[str], click.Command]]:
        yield path, cmd
        if isinstance(cmd, click.Group):
            for name in cmd.list_commands(ctx):
                sub = cmd.get_command(ctx, name)
                if sub is not None and not sub.hidden:
                    yield from walk(sub, sub.make_context(name, [], parent=ctx, resilient_parsing=True), [*path, name])

    yield from walk(cli, cli.make_context("edge-sdk", [], resilient_parsing=True), [])


#: OSErrors that mean "the path you gave is wrong" (usage, exit 2) rather than an I/O failure (exit 1)
_PATH_ERRORS = (FileNotFoundError, FileExistsError, PermissionError, IsADirectoryError, NotADirectoryError)


def describe_os_error(exc: OSError) -> str:
    """One line for an ``OSError``: ``No such file or directory: /nope`` instead of ``[Errno 2] ...: '/nope'``."""
    if exc.strerror and exc.filename is not None:
        target = f"{exc.filename} -> {exc.filename2}" if exc.filename2 is not None else str(exc.filename)
        return f"{exc.strerror}: {target}"
    return str(exc) or type(exc).__name__


def usage_error_line(exc: click.ClickException) -> str:
    """One line for a click usage error, ending with the help command of the command that refused it."""
    line = f"error: {type(exc).__name__}: {exc.format_message()}"
    ctx = getattr(exc, "ctx", None)
    if ctx is not None:
        line += f" (see '{ctx.command_path} -h')"
    return line


def format_warning(message: Warning | str, category: type[Warning], filename: str, lineno: int,
                   line: str | None = None) -> str:
    """Warnings as one line, ``warning: <Category>: <message> (<file>:<line>)``, without the source line."""
    return f"warning: {category.__name__}: {message} ({os.path.basename(filename)}:{lineno})\n"


def main(argv: list[str] | None = None) -> int:
    """Console entry point: runs the CLI, mapping typed errors to one line + exit code."""
    import warnings

    from edge_sdk.errors import EdgeSdkError

    debug = bool(os.environ.get("EDGE_SDK_DEBUG"))
    if not debug:
        warnings.formatwarning = format_warning
    try:
        cli.main(args=argv, prog_name="edge-sdk", standalone_mode=False)
    except click.exceptions.Exit as exc:
        return int(exc.exit_code or 0)
    except click.exceptions.NoArgsIsHelpError as exc:  # a bare group: its help, as click shows it
        exc.show()
        return exc.exit_code
    except click.ClickException as exc:
        click.echo(usage_error_line(exc), err=True)
        return exc.exit_code
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        return 130
    except EdgeSdkError as exc:
        if debug:
            raise
        click.echo(f"error: {type(exc).__name__}: {exc}", err=True)
        return exc.exit_code
    except OSError as exc:
        if debug:
            raise
        click.echo(f"error: {type(exc).__name__}: {describe_os_error(exc)}", err=True)
        return 2 if isinstance(exc, _PATH_ERRORS) else 1
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
