"""The ``--beam-task`` / ``--model`` options shared by ``edge-sdk quantize`` and ``edge-sdk distill``: any
:class:`~edge_sdk.beam.taskspec.BeamTaskSpec` (e.g. BM-Case2 temporal prediction) and the beam model kind."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from edge_sdk.errors import ConfigError

#: the largest --beam-task file read (a task spec is a few hundred bytes)
MAX_TASK_BYTES = 64 * 1024


def beam_task_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """Add ``--beam-task`` (-> ``beam_task``) and ``--model`` (-> ``model``) to a click command."""
    f = click.option("--model", type=click.Choice(["mlp", "gru"]), default=None,
                     help="beam model: mlp (BM-Case1 default) or gru (temporal GRU with the residual start at "
                          "sample-and-hold; BM-Case2 default)")(f)
    return click.option("--beam-task", type=str, default=None, metavar="JSON|FILE",
                        help="beam task spec (BeamTaskSpec fields) as JSON or a .json file, e.g. BM-Case2: "
                             '\'{"case": "case2", "setb": "1/4", "history": 4, "horizon": 1, "period_steps": 8}\'')(f)


def parse_beam_task(text: str | None) -> dict[str, Any] | None:
    """``--beam-task``: JSON text or a path to a JSON file -> a checked BeamTaskSpec dict (ConfigError naming
    the problem otherwise)."""
    if text is None:
        return None
    from edge_sdk.beam.taskspec import BeamTaskSpec

    src = text
    if not text.lstrip().startswith("{"):
        p = Path(text)
        if not p.is_file():
            raise ConfigError(f"--beam-task: {text!r} is neither a JSON object nor an existing .json file")
        if p.stat().st_size > MAX_TASK_BYTES:
            raise ConfigError(f"--beam-task: {p} is larger than {MAX_TASK_BYTES} bytes; a task spec is a few hundred")
        src = p.read_text(encoding="utf-8", errors="replace")
    try:
        d = json.loads(src)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"--beam-task: not valid JSON ({exc.msg} at position {exc.pos})") from None
    if not isinstance(d, dict):
        raise ConfigError("--beam-task: expected a JSON object of BeamTaskSpec fields")
    return BeamTaskSpec.from_dict(d).to_dict()
