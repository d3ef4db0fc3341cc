"""HDF5 reader fuzzing in a memory-capped subprocess (issue 12): byte flips (metadata and data), truncation,
and structural rewrites (declared row counts, chunk shapes, filters, links, virtual datasets) of a valid beam
file; every outcome is a complete read or a one-line DatasetError, never another exception or an allocation past
the cap (RLIMIT_AS = address space after start-up + 512 MiB; reader cap ``max_bytes`` = 96 MiB). Each case is
read in-process in a forked child; when libhdf5 itself crashes or loops on a case (some byte flips make it
segfault, or spin for ever on an attribute header, which no Python check can stop), the case passes only if the
product's isolated read (``isolate=True``, a child process per file under deadlines: what every command uses)
gives a one-line DatasetError. A few hundred cases by default; ``-m slow``
runs more. ``python tests/core/test_beam_h5_fuzz.py CASES SEED [KEEP_DIR]`` prints the counts as JSON (and keeps
the files that crash libhdf5 in KEEP_DIR)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import traceback
from pathlib import Path

import pytest

from edge_sdk.schema import cap_address_space

HERE = Path(__file__).resolve()
RLIMIT_EXTRA = 512 << 20
#: the reader's cap in the fuzz: a full read plus validation temporaries stays well inside RLIMIT_EXTRA
MAX_BYTES = 96 << 20
#: one case's in-process read in its forked child (a good file: milliseconds); longer is a libhdf5 hang, which the
#: isolated read must then end with a typed error within its own deadlines (PROBE_OPEN_TIMEOUT_S, 20 s)
CASE_TIMEOUT_S = 30
ISOLATED_TIMEOUT_S = 90


def _run(cases: int, seed: int) -> dict:
    r = subprocess.run([sys.executable, str(HERE), str(cases), str(seed)], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return json.loads(r.stdout.strip().splitlines()[-1])


def _check(res: dict, cases: int) -> None:
    assert res["rlimit_set"] and res["cases"] == cases
    assert res["bad"] == [], res["bad"][:3]
    assert res["ok"] + res["errors"] == cases and res["errors"] > cases // 4 and res["ok"] >= 1, res
    # libhdf5 crashes on a few byte-flipped files; hundreds would mean the run itself is broken, not the files
    assert res["crashes"] + res["hangs"] <= cases // 50, res


def test_h5_reader_fuzz():
    _check(_run(600, 5), 600)


@pytest.mark.slow
def test_h5_reader_fuzz_long():
    _check(_run(3000, 6), 3000)


def _structural(rng, h) -> None:
    import h5py
    import numpy as np

    names = sorted(h)
    name = names[int(rng.integers(0, len(names)))]
    op = int(rng.integers(0, 7))
    if op == 0:  # declare many more rows (a compression bomb of zeros)
        n = int(rng.choice([10**3, 10**5, 10**6, 4 * 10**6, 10**8]))
        for k in names:
            h[k].resize(n, axis=0)
        h.attrs["n_done"] = n
        h.attrs["n_target"] = n
    elif op == 1:  # rewrite a dataset with another chunk shape / filter
        arr = h[name][()]
        del h[name]
        kw = [{"chunks": (max(1, len(arr)),) + arr.shape[1:], "compression": "gzip"},
              {"chunks": True, "scaleoffset": 2} if arr.dtype.kind in "iu" else {"chunks": True, "shuffle": True},
              {"chunks": True, "compression": "lzf", "fletcher32": True}, {}][int(rng.integers(0, 4))]
        h.create_dataset(name, data=arr, maxshape=(None,) + arr.shape[1:], **kw)
    elif op == 2:  # replace by a link or a virtual dataset over another file
        arr = h[name][()]
        del h[name]
        k = int(rng.integers(0, 3))
        if k == 0:
            h[name] = h5py.ExternalLink("elsewhere.h5", "/" + name)
        elif k == 1:
            h[name] = h5py.SoftLink("/nowhere")
        else:
            layout = h5py.VirtualLayout(shape=arr.shape, dtype=arr.dtype)
            layout[:] = h5py.VirtualSource(str(rng.choice(["elsewhere.h5", "/etc/passwd", "good.h5"])), name,
                                           shape=arr.shape)
            h.create_virtual_dataset(name, layout)
    elif op == 3:  # attribute with another type
        key = str(rng.choice(["n_done", "n_target", "n_tx", "n_rx", "case", "complete", "schema_version"]))
        h.attrs[key] = [-1, 0, 10**12, "x", 1.5, True, np.arange(3)][int(rng.integers(0, 7))]
    elif op == 4:  # drop rows from one dataset
        if h[name].shape[0]:
            h[name].resize(h[name].shape[0] - 1, axis=0)
    elif op == 5:  # zero rows
        for k in names:
            h[k].resize(0, axis=0)
        h.attrs["n_done"] = 0
        h.attrs["n_target"] = 0
    else:  # a group where a dataset should be
        del h[name]
        h.create_group(name)


def _in_fork(fn, timeout_s: int = CASE_TIMEOUT_S) -> dict:
    """``fn()`` (a dict: ``outcome`` "ok" / "error" with the DatasetError text) in a forked child, so that neither
    a crash of libhdf5 (``outcome`` "crash", with the signal) nor whatever state the library is left in reaches
    this process or the next case; a child still running after ``timeout_s`` is killed ("hang")."""
    import os
    import signal

    from edge_sdk.errors import DatasetError

    rfd, wfd = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        os.close(rfd)
        signal.alarm(timeout_s)
        try:
            res = fn()
        except DatasetError as exc:
            res = {"outcome": "error", "error": str(exc)}
        except BaseException as exc:  # noqa: BLE001 - anything else is a finding
            res = {"outcome": "bad", "error": f"{type(exc).__name__}: {str(exc)[:300]}",
                   "where": traceback.format_exc()[-1000:]}
        os.write(wfd, json.dumps(res).encode())
        os.close(wfd)
        os._exit(0)
    os.close(wfd)
    with os.fdopen(rfd, "rb") as r:
        raw = r.read()
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        sig = signal.Signals(os.WTERMSIG(status)).name
        if sig == "SIGALRM":
            return {"outcome": "hang", "error": f"no result after {timeout_s} s"}
        return {"outcome": "crash", "error": sig}
    return json.loads(raw) if raw else {"outcome": "bad", "error": f"child exit status {status}, no result"}


def _mutate_structure(good: Path, q: Path, seed: int, i: int) -> dict:
    import h5py
    import numpy as np

    rng = np.random.default_rng([seed, i, 1])
    shutil.copyfile(good, q)
    with h5py.File(q, "r+") as h:
        for _ in range(int(rng.integers(1, 3))):
            try:  # a rewrite that h5py refuses (a group after an earlier rewrite) leaves a file anyway
                _structural(rng, h)
            except (TypeError, KeyError, ValueError, AttributeError, OSError, MemoryError):
                pass  # MemoryError: the mutator itself copying a dataset an earlier rewrite made huge
    return {"outcome": "ok"}


def _read_in_process(q: Path, allow: dict) -> dict:
    from edge_sdk.beam.h5reader import open_beam_h5, read_beam_h5

    with open_beam_h5(q, **allow) as f:
        for _b in f.iter_rows(4096):
            pass
    read_beam_h5(q, **allow)
    return {"outcome": "ok"}


def _read_isolated(q: Path, allow: dict) -> dict:
    from edge_sdk.beam.h5reader import read_beam_h5

    read_beam_h5(q, isolate=True, **allow)
    return {"outcome": "ok"}


def fuzz(cases: int, seed: int, keep: Path | None = None) -> dict:
    """Case ``i`` draws from ``default_rng([seed, i])``; the structural mutator (h5py writing the copy) and each
    read run in forked children, so this process never opens a mutated file and its libhdf5 state stays clean."""
    import numpy as np

    from edge_sdk.beam.h5reader import read_beam_h5
    from edge_sdk.beam.h5writer import write_beam_h5
    from edge_sdk.beam.synthetic import make_synthetic_beam_dataset

    tmp = Path(tempfile.mkdtemp(prefix="h5fuzz-"))
    good = tmp / "good.h5"
    write_beam_h5(good, make_synthetic_beam_dataset(200, seed=1, case="case2", steps=10))
    data = good.read_bytes()
    read_beam_h5(good)
    limited = cap_address_space(RLIMIT_EXTRA)
    ok = errors = crashes = hangs = 0
    bad = []
    for i in range(cases):
        q = tmp / f"c{i}.h5"
        rng = np.random.default_rng([seed, i])
        try:
            op = i % 3
            if op == 0:
                d = bytearray(data)
                for _ in range(int(rng.integers(1, 6))):
                    j = int(rng.integers(0, 8192 if rng.integers(0, 2) else len(d)))
                    d[j] ^= int(rng.integers(1, 256))
                q.write_bytes(bytes(d))
            elif op == 1:
                q.write_bytes(data[: int(rng.integers(0, len(data)))])
            else:
                m = _in_fork(lambda: _mutate_structure(good, q, seed, i))  # noqa: B023 - runs at once
                if m["outcome"] != "ok":
                    bad.append({"case": i, "error": f"the mutator itself failed: {m}"})
                    continue
            # stitched files are read only when allowed; the cap is far below the memory limit's headroom
            allow = {"allow_virtual": bool(rng.integers(0, 2)), "max_bytes": MAX_BYTES}
            res = _in_fork(lambda: _read_in_process(q, allow))  # noqa: B023 - runs at once
            if res["outcome"] in ("crash", "hang"):
                # libhdf5 itself died or looped on this file (C code no Python check can stop): the product's
                # isolated read (what every command uses for the files it is handed) must end it with a typed error
                crashes += res["outcome"] == "crash"
                hangs += res["outcome"] == "hang"
                if keep is not None:
                    shutil.copyfile(q, keep / f"{res['outcome']}-seed{seed}-case{i}.h5")
                res = _in_fork(lambda: _read_isolated(q, allow), ISOLATED_TIMEOUT_S)  # noqa: B023 - runs at once
                if res["outcome"] == "ok":
                    res = {"outcome": "bad", "error": "libhdf5 fails on it in-process, but the isolated read accepted it"}
            if res["outcome"] == "ok":
                ok += 1
            elif res["outcome"] == "error":
                errors += 1
                if "\n" in res["error"]:
                    bad.append({"case": i, "error": f"multi-line: {res['error'][:300]}"})
            else:
                bad.append({"case": i, **res})
        except BaseException as exc:  # noqa: BLE001 - anything else is a finding
            bad.append({"case": i, "error": f"{type(exc).__name__}: {str(exc)[:300]}",
                        "where": traceback.format_exc()[-1000:]})
        finally:
            q.unlink(missing_ok=True)
    shutil.rmtree(tmp, ignore_errors=True)
    return {"cases": cases, "ok": ok, "errors": errors, "crashes": crashes, "hangs": hangs, "bad": bad,
            "rlimit_set": limited}


if __name__ == "__main__":
    print(json.dumps(fuzz(int(sys.argv[1]), int(sys.argv[2]), Path(sys.argv[3]) if len(sys.argv) > 3 else None)))
