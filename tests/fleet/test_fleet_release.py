"""Release sources: the shipped store (datasets/3gpp/releases/beam-uma, made by tools/make_fleet_release.py), a
``files`` release published into a private store, the device's recipe, and what a device would refuse."""

from __future__ import annotations

import json
import math
import shutil
from dataclasses import replace
from pathlib import Path

import pytest
from conftest import scenario_toml

from edge_sdk.errors import ConfigError
from edge_sdk.fleet.release import device_trainer, resolve_release
from edge_sdk.fleet.scenario import load_scenario, parse_scenario
from edge_sdk.payload import read_payload
from edge_sdk.release import Store

ROOT = Path(__file__).resolve().parents[2]
RELEASES = ROOT / "datasets" / "3gpp" / "releases"


def test_shipped_store_is_complete_signed_and_indexed() -> None:
    index = json.loads((RELEASES / "beam-uma.json").read_text())
    store = Store(RELEASES / "beam-uma")
    assert store.verify().ok
    rec = store.channel(index["channel"])
    heads = [*reversed(rec.history), rec.manifest]
    assert [h.digest for h in heads] == [r["manifest"] for r in index["rounds"]]
    for r, head in zip(index["rounds"], heads, strict=True):
        m = store.manifest(head.digest, trusted_keys=[RELEASES / "beam-uma.pub"], require_signature=True)
        assert m.signature_status == "verified"
        assert [t.name for t in m.release.tiers] == ["full", "36x", "180x"]  # best first: by the server's Top-1
        for t, e in zip(m.release.tiers, r["tiers"], strict=True):
            assert (t.payload.digest, t.payload.size, t.kpis["top1"]) == (e["payload"], e["payload_bytes"], e["top1"])
            p = read_payload(store.blob_path(t.payload.digest), trusted_keys=[RELEASES / "beam-uma.pub"],
                             require_signature=True)
            assert p.graph == {"sha256": t.graph.hex, "size": t.graph.size}
    for tier, cmds in index["commands"].items():
        assert all(c.startswith("edge-sdk distill ") for c in cmds), tier


def test_presets_resolve_and_follow_the_device_recipe() -> None:
    sc = load_scenario("lte-mixed-1k")
    rel = resolve_release(sc.release)
    try:
        assert rel.source == "store" and len(rel.rounds) == 2
        assert all(rnd.manifest.signature_status == "verified" for rnd in rel.rounds)
        t36 = rel.rounds[0].tier("36x")
        path = rel.blob_path(t36.payload.digest)
        steps = read_payload(path).task["train"]["steps"]
        tr = device_trainer(path, rel.blob_path(t36.graph.digest))
        assert t36.train_steps == tr.total_steps >= steps  # whole epochs covering the server's update count
        assert t36.train_steps - steps < tr.steps_per_epoch
        assert rel.rounds[1].tier("full").payload == rel.rounds[0].tier("full").payload  # full data is not redone
        assert rel.rounds[1].tier("36x").graph == t36.graph and rel.rounds[1].tier("36x").payload != t36.payload
        assert t36.device_state_bytes == 4 * 3 * sum(math.prod(s) for _, s in tr.graph.model.param_shapes())
        assert 0.6 < (t36.expected_top1 or 0) < 0.7
    finally:
        rel.close()


def test_files_release_is_published_into_a_private_store(release_dir: Path) -> None:
    sc = parse_scenario(scenario_toml(release_dir).encode(), source="s.toml", base=release_dir)
    rel = resolve_release(sc.release)
    tmp = rel.store.root
    try:
        assert rel.source == "files" and [t.name for t in rel.rounds[0].tiers] == ["adam", "small"]  # larger first
        assert rel.rounds[0].manifest.signature_status == "unsigned"
        assert rel.rounds[0].tier("adam").graph == rel.rounds[0].tier("small").graph
        again = resolve_release(sc.release)
        assert again.rounds[1].manifest.digest == rel.rounds[1].manifest.digest  # same files, same manifests
        again.close()
    finally:
        rel.close()
    assert not tmp.exists()


def test_a_device_refuses_a_mismatched_graph_or_unsigned_payload(release_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "alone").mkdir()
    shutil.copyfile(release_dir / "adam-r0.epl", tmp_path / "alone" / "adam.epl")  # its graph is not beside it
    shutil.copyfile(Path(__file__).parents[1] / "device" / "data" / "soft_sgd" / "graph.onnx", tmp_path / "g.onnx")
    text = scenario_toml(release_dir, rounds=1).replace(f"{release_dir}/graph.onnx", str(tmp_path / "g.onnx"))
    text = text.replace(f"{release_dir}/adam-r0.epl", str(tmp_path / "alone" / "adam.epl"))
    text = text.replace(f'[[release.tier]]\nname = "small"\npayload = ["{release_dir}/small-r0.epl"]\n'
                        f'graph = "{tmp_path}/g.onnx"\n', "")  # one tier only
    sc = parse_scenario(text.encode(), source="s.toml", base=release_dir)
    with pytest.raises(ConfigError, match="neither beside it, nor given with --graph"):
        resolve_release(sc.release)
    sc = load_scenario("lte-mixed-1k")
    bad = tmp_path / "other.pub"
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    bad.write_bytes(Ed25519PrivateKey.generate().public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    with pytest.raises(ConfigError, match="not among the 1 trusted key"):
        resolve_release(replace(sc.release, trusted_keys=(bad,)))


def test_store_with_too_few_rounds() -> None:
    sc = load_scenario("lte-mixed-1k")
    with pytest.raises(ConfigError, match="has only 2 release"):
        resolve_release(replace(sc.release, rounds=3))


def test_v2_files_release_carries_the_task_blob_and_trains(release_dir: Path, tmp_path: Path) -> None:
    """Payloads of format v2 (task blob beside them): the private store's release lists the task blob, every
    tier counts it among the bytes a device fetches, and the devices train on it (inline backend)."""
    from v2files import v2_payload

    from edge_sdk.fleet.outputs import read_parquet
    from edge_sdk.fleet.simulate import RunOptions, simulate

    d = tmp_path / "v2"
    d.mkdir()
    for name in ("adam-r0", "small-r0"):
        v2_payload(release_dir / f"{name}.epl", d / f"{name}.epl")
    for f in ("graph.onnx", "pool.h5"):
        shutil.copyfile(release_dir / f, d / f)
    task = (d / "task.json").read_bytes()
    sc = parse_scenario(scenario_toml(d, devices=8, rounds=1).encode(), source="s.toml", base=d)
    rel = resolve_release(sc.release)
    try:
        (blob,) = rel.rounds[0].manifest.release.extra
        assert blob.type == "task" and blob.size == len(task)
        assert all(t.extra == (blob,) for t in rel.rounds[0].tiers) and blob.digest in rel.blobs()
    finally:
        rel.close()
    simulate(sc, tmp_path / "out", RunOptions(backend="inline", progress=False))
    t = read_parquet(tmp_path / "out" / "devices.parquet")
    ok = [i for i, f in enumerate(t["failure"]) if f is None]
    assert len(ok) >= 6 and all(0.0 <= t["top1"][i] <= 1.0 for i in ok)
    graph = (d / "graph.onnx").stat().st_size
    for i in ok:  # first fetch of a fresh device: payload + graph + task blob
        payload = (d / f"{'adam' if t['tier'][i] == 'adam' else 'small'}-r0.epl").stat().st_size
        assert t["bytes_blobs"][i] == payload + graph + len(task)
