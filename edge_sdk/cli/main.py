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


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="edge-sdk")
def cli() -> None:
    """edge-sdk: move training data to edge devices in as few bits as possible."""


def main(argv: list[str] | None = None) -> int:
    """Console entry point: runs the CLI, mapping typed errors to one line + exit code."""
    from edge_sdk.errors import EdgeSdkError

    try:
        cli.main(args=argv, prog_name="edge-sdk", standalone_mode=False)
    except click.exceptions.Exit as exc:
        return int(exc.exit_code or 0)
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        return 130
    except EdgeSdkError as exc:
        if os.environ.get("EDGE_SDK_DEBUG"):
            raise
        click.echo(f"error: {type(exc).__name__}: {exc}", err=True)
        return exc.exit_code
    except (FileNotFoundError, PermissionError, IsADirectoryError) as exc:
        if os.environ.get("EDGE_SDK_DEBUG"):
            raise
        click.echo(f"error: {type(exc).__name__}: {exc}", err=True)
        return 2
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
