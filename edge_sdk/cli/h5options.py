"""The options every command that reads a beam HDF5 file shares: how far it trusts the file
(:class:`edge_sdk.beam.h5guard.H5ReadOptions`; docs/dataset-hdf5.md, "Reading untrusted files")."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import click

from edge_sdk.beam.h5guard import DEFAULT_MAX_BYTES, H5ReadOptions


def h5_read_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Add ``--max-bytes SIZE``, ``--allow-virtual`` and ``--allow-external`` to a click command; the command
    function receives them as one keyword argument ``h5: H5ReadOptions``."""

    @functools.wraps(fn)
    def wrapper(*args: Any, h5_max_bytes: str, h5_allow_virtual: bool, h5_allow_external: bool, **kw: Any) -> Any:
        from edge_sdk.units import parse_size

        h5 = H5ReadOptions(max_bytes=parse_size(h5_max_bytes, "--max-bytes"), allow_virtual=h5_allow_virtual,
                           allow_external=h5_allow_external)
        return fn(*args, h5=h5, **kw)

    wrapper = click.option(
        "--allow-external", "h5_allow_external", is_flag=True,
        help="follow links out of the HDF5 file (external links, soft links, external raw storage, virtual "
             "datasets over any file); only for files you trust")(wrapper)
    wrapper = click.option(
        "--allow-virtual", "h5_allow_virtual", is_flag=True,
        help="read a stitched sharded dataset (virtual datasets over .h5 shard files in the same directory)")(wrapper)
    wrapper = click.option(
        "--max-bytes", "h5_max_bytes", default=f"{DEFAULT_MAX_BYTES >> 30}GiB", show_default=True, metavar="SIZE",
        help="refuse HDF5 files whose declared arrays need more than SIZE when decompressed (checked from the "
             "metadata before reading a value: guards against compression bombs)")(wrapper)
    return wrapper
