"""Releases of payload format v2 (docs/transfer.md, "Task blobs"): `edge-sdk store add` attaches each payload's
task blob (found beside it, given with --task, or in the store) as an extra blob of type ``task``; `edge-sdk
device fetch` against a real server on loopback downloads it once (resumable, bounded, verified before it enters
the cache), reads the payload with it, and a second tier shares the cached copy; `device train --release` finds
it with no flag. A release whose task blob is missing, corrupt, invalid, oversized or not listed gives a typed
error and caches nothing unverified."""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from edge_sdk.device.cache import ReleaseCache, resolve_release
from edge_sdk.device.fetch import FetchConfig, fetch_release
from edge_sdk.errors import ConfigError
from edge_sdk.payload import read_payload
from edge_sdk.payload.taskblob import TASK_BLOB_MAX_BYTES
from edge_sdk.release import BlobMismatch, ReleaseMismatch, Store, TransferFailed, publish
from edge_sdk.release.digest import BlobRef
from edge_sdk.release.manifest import build_release, encode_manifest
from edge_sdk.serve.app import ServeConfig
from edge_sdk.serve.server import start_in_thread
from tests.serve.test_fetch_e2e import assert_cache_clean

CHANNEL = "beam-uma/stable"


def _sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _cfg(url: str, cache: Path, **kw) -> FetchConfig:
    kw.setdefault("backoff_base_s", 0.01)
    kw.setdefault("backoff_max_s", 0.05)
    return FetchConfig(url=url, channel=CHANNEL, cache=cache, **kw)


def _served_paths(log: io.StringIO) -> list[dict]:
    return [e for e in (json.loads(x) for x in log.getvalue().splitlines()) if e["path"].startswith("/v1/blobs/")]


# ------------------------------------------------------------------------------------------ store add
def test_publish_attaches_the_task_blob_once_at_release_level(tmp_path, release_files_v2, release_files):
    store = Store(tmp_path / "store", create=True)
    res = publish(store, [release_files_v2.big, release_files_v2.small], channel=CHANNEL)
    task = (release_files_v2.big.parent / "task.json").read_bytes()
    assert task == (release_files_v2.small.parent / "task.json").read_bytes()  # one task, one graph: one blob
    rel = res.manifest.release
    assert [(b.type, b.digest, b.size) for b in rel.extra] == [("task", _sha(task), len(task))]
    assert all(t.extra == () for t in rel.tiers)
    assert store.blob_path(_sha(task)).read_bytes() == task and _sha(task) in {b.digest for b in res.new_blobs}
    with read_payload(release_files_v2.big) as p:
        assert f"sha256:{p.task_digest}" == _sha(task)
    # the release identity is the one the same payloads give in format v1 (what a v1 release of them says)
    v1 = publish(Store(tmp_path / "store1", create=True), [release_files.big, release_files.small], channel=CHANNEL)
    assert v1.manifest.release.identity == rel.identity and v1.manifest.release.extra == ()
    assert store.verify().ok


def test_release_min_runtime_is_never_below_the_first_reader_of_its_payload_format(tmp_path, release_files_v2,
                                                                                 release_files):
    """M12 + FORMAT_MIN_RUNTIME: a v2 release needs edge-sdk >= 0.2.0 (the first runtime that reads format v2), so a
    0.1.0 runtime refuses it from the manifest alone; a v1-only release may still be offered to 0.1.0 devices."""
    from edge_sdk._version import __version__
    from edge_sdk.release import RuntimeTooOld, check_runtime
    from edge_sdk.release.manifest import FORMAT_MIN_RUNTIME, parse_version

    assert FORMAT_MIN_RUNTIME == {1: "0.1.0", 2: "0.2.0"} and parse_version(__version__) >= (0, 2, 0)
    store = Store(tmp_path / "store", create=True)
    v2 = publish(store, [release_files_v2.big], channel=CHANNEL).manifest.release
    assert parse_version(v2.min_runtime) == parse_version(__version__)  # default: the publishing runtime
    with pytest.raises(RuntimeTooOld, match=rf"needs edge-sdk >= {re.escape(__version__)}"):
        check_runtime(v2, "0.1.0")
    with pytest.raises(ConfigError, match=r"--min-runtime 0\.1\.0 is below 0\.2\.0.*format 2"):
        publish(store, [release_files_v2.big], min_runtime="0.1.0")
    assert publish(store, [release_files_v2.big], min_runtime="0.2.0").manifest.release.min_runtime == "0.2.0"
    v1 = publish(store, [release_files.big], min_runtime="0.1.0").manifest.release
    assert v1.min_runtime == "0.1.0"
    check_runtime(v1, "0.1.0")
    from edge_sdk.cli.main import cli

    res = CliRunner().invoke(cli, ["store", "add", "--store", str(tmp_path / "store"), "--channel", CHANNEL,
                                   "--min-runtime", "0.1.0", str(release_files_v2.big)])
    assert res.exit_code != 0 and isinstance(res.exception, ConfigError) and "below 0.2.0" in str(res.exception)


def test_release_of_a_label_smoothing_payload_needs_runtime_0_3_0(tmp_path, release_files_v2):
    """FEATURE_MIN_RUNTIME: a tier whose recipe smooths labels raises the release's floor to 0.3.0 (the first
    runtime that trains with it), so a 0.2.0 device refuses the release from the manifest, before downloading."""
    from edge_sdk.release import RuntimeTooOld, check_runtime
    from edge_sdk.release.manifest import FEATURE_MIN_RUNTIME, format_min_runtime, parse_version
    from tests.conftest import DEVICE_DATA
    from tests.v2files import v2_payload

    assert FEATURE_MIN_RUNTIME == {"label_smoothing": "0.3.0"}
    assert format_min_runtime([2], ["label_smoothing"]) == "0.3.0" and format_min_runtime([1, 2]) == "0.2.0"
    ls = tmp_path / "ls"
    ls.mkdir()
    shutil.copy(release_files_v2.graph, ls / "graph.onnx")
    v2_payload(DEVICE_DATA / "payload.bin", ls / "payload.epl", recipe_overrides={"label_smoothing": 0.1})
    store = Store(tmp_path / "store", create=True)
    rel = publish(store, [ls / "payload.epl", release_files_v2.small]).manifest.release
    assert parse_version(rel.min_runtime) >= (0, 3, 0)
    with pytest.raises(RuntimeTooOld, match=r"needs edge-sdk >= 0\.3\.0"):
        check_runtime(rel, "0.2.0")
    with pytest.raises(ConfigError, match=r"--min-runtime 0\.2\.0 is below 0\.3\.0.*label_smoothing"):
        publish(store, [ls / "payload.epl"], min_runtime="0.2.0")
    assert publish(store, [release_files_v2.small], min_runtime="0.2.0").manifest.release.min_runtime == "0.2.0"


def test_publish_finds_the_task_blob_given_or_in_the_store(tmp_path, release_files_v2):
    alone = tmp_path / "alone"
    alone.mkdir()
    shutil.copy(release_files_v2.big, alone / "payload.epl")
    shutil.copy(release_files_v2.graph, alone / "graph.onnx")
    (alone / "task.json").write_bytes(b'{"not": "this payload\'s task"}')  # another file by that name is skipped
    task = release_files_v2.big.parent / "task.json"
    store = Store(tmp_path / "store", create=True)
    with pytest.raises(ConfigError, match="naming task blob sha256:[0-9a-f]{64}.*--task"):
        publish(store, [alone / "payload.epl"], channel=CHANNEL)
    assert store.channels() == [] and not list(store.iter_blobs())  # nothing written
    res = publish(store, [alone / "payload.epl"], channel=CHANNEL, tasks=[task])
    assert [b.type for b in res.manifest.release.extra] == ["task"]
    # once in the store, a later release of the same payload finds it there
    res2 = publish(store, [alone / "payload.epl"], channel="other/stable", release_name="again")
    assert res2.manifest.release.extra == res.manifest.release.extra and res2.new_blobs == []
    with pytest.raises(ConfigError, match="--task"):
        publish(store, [alone / "payload.epl"], channel=CHANNEL, extra=[("task", task)])


def test_tiers_with_different_task_blobs_carry_their_own(tmp_path, release_files_v2):
    """Two graphs, so two task blobs: each tier lists its own (a device never downloads the other tier's)."""
    from edge_sdk.payload import SampleGroup, write_payload_v2
    from edge_sdk.payload.taskblob import write_task_blob

    other = tmp_path / "other"
    other.mkdir()
    graph2 = other / "graph.onnx"
    graph2.write_bytes(release_files_v2.graph.read_bytes() + b"\0")  # another graph digest (publish reads no ONNX)
    with read_payload(Path(__file__).parents[1] / "device" / "data" / "beam_adam" / "payload.bin") as p:
        groups = [SampleGroup(name=g.name, kind=g.kind, bits=g.bits, data=g.codes()[:32], role=g.role,
                              params={a: (v[:32] if v.ndim and v.shape[0] == g.n else v) for a, v in g.params().items()},
                              labels=g.labels()[:32]) for g in p.groups]
        task = dict(p.task)
        recipe = task.pop("train")
        blob = write_task_blob(other / "task.json", task,
                               {"sha256": hashlib.sha256(graph2.read_bytes()).hexdigest(), "size": graph2.stat().st_size})
        write_payload_v2(other / "payload.epl", groups, p.num_classes, task_digest=blob.digest, recipe=recipe)
    store = Store(tmp_path / "store", create=True)
    res = publish(store, [release_files_v2.big, other / "payload.epl"], channel=CHANNEL, tier_names=["a", "b"])
    rel = res.manifest.release
    assert rel.extra == ()
    by = {t.name: t for t in rel.tiers}
    assert [b.digest for b in by["a"].extra] == [_sha((release_files_v2.big.parent / "task.json").read_bytes())]
    assert [b.digest for b in by["b"].extra] == [_sha((other / "task.json").read_bytes())]
    assert {b.type for t in rel.tiers for b in t.extra} == {"task"}


def test_cli_store_add_with_task_option(tmp_path, release_files_v2):
    from edge_sdk.cli.main import cli

    alone = tmp_path / "alone"
    alone.mkdir()
    shutil.copy(release_files_v2.small, alone / "payload.epl")
    task = release_files_v2.small.parent / "task.json"
    args = ["store", "add", "--store", str(tmp_path / "store"), "--channel", CHANNEL, str(alone / "payload.epl"),
            "--graph", str(release_files_v2.graph)]
    r = CliRunner().invoke(cli, args)
    assert r.exit_code != 0 and isinstance(r.exception, ConfigError) and "--task" in str(r.exception)
    r = CliRunner().invoke(cli, [*args, "--task", str(task), "--json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["extra"] == [{"digest": _sha(task.read_bytes()), "size": task.stat().st_size, "type": "task"}]
    r = CliRunner().invoke(cli, [*args, "--task", str(task)])
    assert r.exit_code == 0 and "extra blob task: sha256:" in r.output


# ------------------------------------------------------------------------------------------ device fetch
@pytest.fixture
def v2_store(tmp_path, release_files_v2):
    store = Store(tmp_path / "store", create=True)
    return store, publish(store, [release_files_v2.big, release_files_v2.small], channel=CHANNEL).manifest


@pytest.fixture
def v2_served(v2_store):
    store, m = v2_store
    log = io.StringIO()
    with start_in_thread(ServeConfig(store=store.root), log_out=log) as srv:
        yield srv, store, m, log


def test_fetch_caches_the_task_blob_and_a_second_tier_shares_it(v2_served, tmp_path):
    srv, store, m, log = v2_served
    big, small = m.release.tiers
    task = m.release.extra[0]
    cache = tmp_path / "cache"
    rep = fetch_release(_cfg(srv.url, cache, tier=small.name))
    assert [(b.role, b.status) for b in rep.blobs] == [("manifest", "downloaded"), ("payload", "downloaded"),
                                                        ("graph", "downloaded"), ("task", "downloaded")]
    assert rep.bytes_needed == small.payload.size + small.graph.size + task.size
    assert rep.task == str(cache / "blobs" / "sha256" / task.hex[:2] / task.hex)
    assert Path(rep.task).read_bytes() == store.blob_path(task.digest).read_bytes()
    assert ReleaseCache(cache).state(CHANNEL)["task"] == task.digest
    assert assert_cache_clean(cache) == {m.digest, small.payload.digest, small.graph.digest, task.digest}
    # the better tier: only its payload crosses the wire; graph and task blob come from the cache
    rep2 = fetch_release(_cfg(srv.url, cache, tier=big.name))
    assert rep2.bytes_needed == big.payload.size and rep2.bytes_saved_by_cache == big.graph.size + task.size
    assert [(b.role, b.status) for b in rep2.blobs][1:] == [("payload", "downloaded"), ("graph", "cached"),
                                                             ("task", "cached")]
    served = [e["path"] for e in _served_paths(log)]
    assert served.count(f"/v1/blobs/{task.digest}") == 1 and served.count(f"/v1/blobs/{big.graph.digest}") == 1
    # training from the cache finds the task blob with no flag
    payload, graph, info = resolve_release(cache)
    assert payload.name == big.payload.hex and info["task"] == rep.task
    from edge_sdk.cli.main import cli

    out = tmp_path / "trained"
    r = CliRunner().invoke(cli, ["device", "train", "--release", str(cache), "--quiet", "--out", str(out)])
    assert r.exit_code == 0, r.output
    trained = json.loads((out / "report.json").read_text())
    assert trained["release"]["tier"] == big.name and trained["release"]["task"] == rep.task
    with read_payload(payload) as p:
        assert trained["steps"] >= p.recipe["steps"]


def test_task_blob_download_resumes(v2_served, tmp_path):
    srv, store, m, log = v2_served
    task = m.release.extra[0]
    data = store.blob_path(task.digest).read_bytes()
    cache = tmp_path / "cache"
    rc = ReleaseCache(cache)
    part, meta = rc.partial_paths(task.digest)
    part.write_bytes(data[:200])  # what an interrupted fetch left
    meta.write_text(json.dumps({"digest": task.digest, "size": task.size, "validator": f'"{task.digest}"'}))
    rep = fetch_release(_cfg(srv.url, cache, tier=m.release.tiers[1].name))
    t = next(b for b in rep.blobs if b.role == "task")
    assert (t.status, t.resumed_from, t.wire_bytes) == ("resumed", 200, task.size - 200)
    e = [x for x in _served_paths(log) if x["path"] == f"/v1/blobs/{task.digest}"]
    assert len(e) == 1 and e[0]["status"] == 206 and e[0]["range"] == "bytes=200-" and e[0]["bytes"] == task.size - 200
    assert Path(rep.task).read_bytes() == data and not part.exists()


def test_task_blob_missing_from_the_store_is_a_typed_failure(v2_served, tmp_path):
    srv, store, m, _ = v2_served
    task = m.release.extra[0]
    store.blob_path(task.digest).unlink()
    cache = tmp_path / "cache"
    with pytest.raises(TransferFailed, match="404"):
        fetch_release(_cfg(srv.url, cache, retries=1))
    assert task.digest not in assert_cache_clean(cache) and ReleaseCache(cache).state(CHANNEL) is None


def test_corrupt_task_blob_in_the_store_is_refused(v2_served, tmp_path):
    srv, store, m, _ = v2_served
    task = m.release.extra[0]
    p = store.blob_path(task.digest)
    os.chmod(p, 0o644)
    p.write_bytes(p.read_bytes().replace(b'"beam"', b'"BEAM"'))  # same size, other bytes
    cache = tmp_path / "cache"
    with pytest.raises(BlobMismatch, match=task.digest):
        fetch_release(_cfg(srv.url, cache))
    assert task.digest not in assert_cache_clean(cache) and not any((cache / "partial").iterdir())


def _republish(store: Store, m, *, extra=(), tiers=None) -> None:
    """Point the channel at a hand-made release of the same tiers with other extra blobs (what a faulty or
    hostile publisher could serve)."""
    rel = build_release(release="crafted", tiers=tiers or m.release.tiers, identity=m.release.identity, extra=extra)
    got = store.put_manifest(encode_manifest(rel))
    store.set_channel(CHANNEL, got.digest)


def test_release_without_the_task_blob_is_a_release_mismatch_F12(v2_store, tmp_path):
    store, m = v2_store
    _republish(store, m)  # the v2 payloads, but no extra blob of type task
    cache = tmp_path / "cache"
    with start_in_thread(ServeConfig(store=store.root), log_out=io.StringIO()) as srv, pytest.raises(ReleaseMismatch, match="names task blob sha256:.*does not carry"):
        fetch_release(_cfg(srv.url, cache))
    assert ReleaseCache(cache).state(CHANNEL) is None
    # the CLI: one line naming the error, exit code 6, no traceback
    with start_in_thread(ServeConfig(store=store.root), log_out=io.StringIO()) as srv:
        r = subprocess.run([sys.executable, "-m", "edge_sdk.cli", "device", "fetch", "--url", srv.url, "--channel",
                            CHANNEL, "--cache", str(tmp_path / "cache2"), "--quiet"], capture_output=True, text=True,
                           timeout=120)
    assert r.returncode == 6 and "ReleaseMismatch" in r.stderr and "Traceback" not in r.stderr, r.stderr


def test_invalid_or_oversized_task_blob_is_never_cached_F12(v2_store, tmp_path):
    store, m = v2_store
    bad = b'{"graph":null,"schema":"edge-sdk.task/9","task":{}}'  # the digest matches, the schema does not
    ref = store.put_bytes(bad)
    _republish(store, m, extra=[BlobRef(ref.digest, ref.size, "task")])
    cache = tmp_path / "cache"
    with start_in_thread(ServeConfig(store=store.root), log_out=io.StringIO()) as srv, \
            pytest.raises(ReleaseMismatch, match="not a valid task blob"):
        fetch_release(_cfg(srv.url, cache))
    assert ref.digest not in assert_cache_clean(cache) and not any((cache / "partial").iterdir())
    # a task blob the manifest says is larger than TASK_BLOB_MAX_BYTES is refused before a byte of it is asked for
    big = store.put_bytes(b" " * (TASK_BLOB_MAX_BYTES + 1))
    _republish(store, m, extra=[BlobRef(big.digest, big.size, "task")])
    log = io.StringIO()
    with start_in_thread(ServeConfig(store=store.root), log_out=log) as srv, \
            pytest.raises(ReleaseMismatch, match="above the limit"):
        fetch_release(_cfg(srv.url, tmp_path / "cache3"))
    assert _served_paths(log) and all(e["path"] != f"/v1/blobs/{big.digest}" for e in _served_paths(log))
