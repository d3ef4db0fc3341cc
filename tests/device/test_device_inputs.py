"""Every input the device reads beside the payload structure gets a typed one-line error or a bound (issue 12):
task spec, training recipe, beam task, model spec, graph metadata (against the graph itself), training memory,
checkpoints. Crafted payloads are unsigned with a fixed digest, so they verify and reach the trainer."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from inputs import ADAM, SOFT, graph_with_meta, split_payload, with_graph, with_header

from edge_sdk.device.checkpoint import CHECKPOINT_NAME, encode_checkpoint, read_checkpoint
from edge_sdk.device.trainer import Trainer
from edge_sdk.errors import CheckpointError, DeviceError, EdgeSdkError, ResourceLimitError, SchemaError
from edge_sdk.modelspec import ModelSpec
from edge_sdk.schema import TaskSpec, TrainLimits, train_memory

PAYLOAD = (ADAM / "payload.bin").read_bytes()
GRAPH = (ADAM / "graph.onnx").read_bytes()  # the epoch graph (format v2)
GRAPH_STEP = (ADAM.parent / "beam_adam_step" / "graph.onnx").read_bytes()  # the same layout, format v1


def _files(tmp_path: Path, payload: bytes, graph: bytes = GRAPH) -> tuple[Path, Path]:
    p, g = tmp_path / "p.epl", tmp_path / "g.onnx"
    p.write_bytes(payload)
    g.write_bytes(graph)
    return p, g


def _task(fn):
    return with_header(PAYLOAD, lambda h: fn(h["t"]))


# ------------------------------------------------------------------------------------------- task spec
@pytest.mark.parametrize("mutate, field", [
    (lambda t: t["train"].update(batch_size="32"), "task.train.batch_size"),
    (lambda t: t["train"].update(batch_size=True), "task.train.batch_size"),
    (lambda t: t["train"].update(steps=10**12), "task.train.steps"),
    (lambda t: t["train"].update(epochs=3), "task.train"),  # not a recipe field (the recipe counts steps)
    (lambda t: t["train"].update(version=2), "task.train.version"),
    (lambda t: t["train"].update(optimizer="lbfgs"), "task.train.optimizer"),
    (lambda t: t["train"].update(gamma=0.0), "task.train.gamma"),
    (lambda t: t["train"].update(lr=-1), "task.train.lr"),
    (lambda t: t["train"].update(lr=[1]), "task.train.lr"),
    (lambda t: t["train"].update(schedule=3), "task.train.schedule"),
    (lambda t: t["train"].update(momentum=1.5), "task.train.momentum"),
    (lambda t: t["train"].update(surprise=1), "task.train"),
    (lambda t: t.update(train=[1, 2]), "task.train"),
    (lambda t: t["beam"].update(scale_db="loud"), "task.beam.scale_db"),
    (lambda t: t["beam"].update(n_tx="32"), "task.beam.n_tx"),
    (lambda t: t["beam"].update(setb_indices=[1, "a"]), "task.beam"),
    (lambda t: t["beam"].update(history=10**9), "task.beam.history"),
    (lambda t: t.update(beam=[]), "task.beam"),
    (lambda t: t.update(kind="telepathy"), "task.kind"),
    (lambda t: t.update(kind=7), "task.kind"),
    (lambda t: t.update(extra_key=1), "task"),
    (lambda t: t["model"].update(hidden=[32, "64"]), "task.model.hidden[1]"),
    (lambda t: t["model"].update(hidden=32), "task.model.hidden"),
    (lambda t: t["model"].update(num_classes=2.5), "task.model.num_classes"),
    (lambda t: t["model"].update(hidden=[1 << 20]), "task.model.hidden[0]"),
    (lambda t: t["model"].update(hidden=[8] * 65), "task.model.hidden"),
    (lambda t: t.update(model=[]), "task.model"),
])
def test_bad_task_fields_fail_before_training(tmp_path, mutate, field):
    p, g = _files(tmp_path, _task(mutate))
    with pytest.raises(SchemaError) as exc:
        Trainer(p, g)
    assert field in str(exc.value) and "\n" not in str(exc.value)


def test_task_model_must_equal_graph_model(tmp_path):
    p, g = _files(tmp_path, _task(lambda t: t["model"].update(hidden=[33])))
    with pytest.raises(DeviceError, match="task model differs"):
        Trainer(p, g)


def test_task_spec_envelope():
    assert TaskSpec.from_dict({"kind": "beam", "beam": {}}).kind == "beam"
    img = {"kind": "image", "dataset": "digits", "shape": [1, 8, 8], "normalization": {"mean": 0.5, "std": 2.0}}
    assert TaskSpec.from_dict(img).kind == "image"
    assert TaskSpec.from_dict({"kind": "beam"}).beam is None  # trains; evaluation then asks for a beam spec
    for bad in ({**img, "shape": [1, 8, 0]}, {**img, "normalization": {"mean": 0, "std": 0}}, {"kind": "image"}, []):
        with pytest.raises(SchemaError):
            TaskSpec.from_dict(bad)


# ---------------------------------------------------------------------------------------------- memory
def test_memory_bound_refuses_a_huge_model_before_allocating():
    big = ModelSpec(input_dim=8, num_classes=32, hidden=(60000, 60000))
    est = train_memory(big, 64, "adam")
    assert est.params == 8 * 60000 + 60000 + 60000 * 60000 + 60000 + 60000 * 32 + 32
    with pytest.raises(ResourceLimitError, match="--max-train-memory") as exc:
        TrainLimits().check(big, 64, "adam")
    assert "GiB" in str(exc.value) and "\n" not in str(exc.value)
    assert TrainLimits(max_train_memory=est.total).check(big, 64, "adam") == est  # a big device may
    small = ModelSpec(input_dim=8, num_classes=32, hidden=(128, 128))
    assert TrainLimits().check(small, 128, "adam").total < 2 << 20


def test_cli_memory_bound_and_override(tmp_path):
    base = [sys.executable, "-c", "import sys; from edge_sdk.cli.main import main; sys.exit(main(sys.argv[1:]))",
            "device", "train", "--payload", str(ADAM / "payload.bin"), "--graph", str(ADAM / "graph.onnx"),
            "--epochs", "1", "--quiet", "--out", str(tmp_path / "o")]
    r = subprocess.run([*base, "--max-train-memory", "64KiB"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and r.stderr.count("\n") == 1, r.stderr
    assert "ResourceLimitError" in r.stderr and "--max-train-memory" in r.stderr
    r = subprocess.run([*base, "--max-train-memory", "8MiB"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    report = json.loads((tmp_path / "o" / "report.json").read_text())
    assert 0 < report["train_memory_estimate_bytes"] <= 8 << 20


# ------------------------------------------------------------------------------------------ graph size
def test_graph_file_size_checked_before_reading(tmp_path):
    p, g = _files(tmp_path, PAYLOAD, GRAPH + b"\0" * 100)
    with pytest.raises(DeviceError, match="graph does not match the payload"):
        Trainer(p, g)


# -------------------------------------------------------------------------------------- graph metadata
onnx = pytest.importorskip  # graph rewriting needs onnx (server extra); skipped in the torch-free venvs


@pytest.mark.parametrize("fn, raw, match", [
    (lambda m: [m], None, "must be a JSON object"),
    (lambda m: {k: v for k, v in m.items() if k != "groups"}, None, "lacks the key"),
    (lambda m: {**m, "model": {**m["model"], "hidden": [60000, 60000]}}, None, "naming rules|input 'fc|theta_size"),
    (lambda m: {**m, "model": "mlp"}, None, "graph metadata.model must be a JSON object"),
    (lambda m: {**m, "version": 3}, None, "version 3 is not supported"),
    (lambda m: {**m, "version": True}, None, "version True"),
    (lambda m: {**m, "optimizer": "lbfgs"}, None, "optimizer"),
    (lambda m: {**m, "groups": [{**m["groups"][0], "bits": 40}, m["groups"][1]]}, None, "bits"),
    (lambda m: {**m, "groups": m["groups"][:1]}, None, "naming rules"),
    (lambda m: {**m, "inputs": m["inputs"][::-1]}, None, "naming rules"),
    (lambda m: {**m, "extra": 5}, None, "extra"),
    (lambda m: m, "{not json", "not JSON"),
    (lambda m: m, "[" * 100000, "not JSON"),
])
@pytest.mark.parametrize("variant", ["epoch", "step"])
def test_graph_metadata_schema(tmp_path, fn, raw, match, variant):
    onnx("onnx")
    graph = graph_with_meta(GRAPH if variant == "epoch" else GRAPH_STEP, fn, raw)
    p, g = _files(tmp_path, with_graph(PAYLOAD, graph), graph)
    with pytest.raises(SchemaError, match=match):
        Trainer(p, g)


@pytest.mark.parametrize("variant, match", [
    ("step", "input 'fc0.weight' is tensor\\(float\\) \\[32, 8\\]"),  # per-tensor inputs (format v1)
    ("epoch", "theta_size 1344 is not the model's parameter count 2656"),  # one flat vector (format v2)
])
def test_graph_whose_metadata_lies_about_the_model(tmp_path, variant, match):
    """Metadata and names consistent, but the graph's real parameter inputs are smaller than the model it
    claims: refused before init_params would allocate the claimed model."""
    onnx("onnx")

    def fn(m):
        m = {**m, "model": {**m["model"], "hidden": [64]}}
        return m
    graph = graph_with_meta(GRAPH if variant == "epoch" else GRAPH_STEP, fn)
    p, g = _files(tmp_path, with_graph(_task(lambda t: t["model"].update(hidden=[64])), graph), graph)
    with pytest.raises(SchemaError, match=match):
        Trainer(p, g)


def test_epoch_graph_whose_metadata_lies_consistently_about_the_model(tmp_path):
    """theta_size changed to match the claimed model too: the session's real 'theta' input shape refuses it."""
    onnx("onnx")
    graph = graph_with_meta(GRAPH, lambda m: {**m, "model": {**m["model"], "hidden": [64]}, "theta_size": 2656})
    p, g = _files(tmp_path, with_graph(_task(lambda t: t["model"].update(hidden=[64])), graph), graph)
    with pytest.raises(SchemaError, match="input 'theta' is tensor\\(float\\) \\[1344\\]"):
        Trainer(p, g)


# ---------------------------------------------------------------------------------------------- checkpoints
@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("ckpt")
    Trainer(ADAM / "payload.bin", ADAM / "graph.onnx", epochs=3).train(out, stop_after_epochs=1)
    return (out / CHECKPOINT_NAME).read_bytes()


def _resume(tmp_path, data: bytes, name: str = CHECKPOINT_NAME, epochs: int = 3):
    out = tmp_path / "run"
    out.mkdir(exist_ok=True)
    (out / name).write_bytes(data)
    return Trainer(ADAM / "payload.bin", ADAM / "graph.onnx", epochs=epochs).train(out, resume=True)


def test_checkpoint_roundtrip_resumes(tmp_path, trained):
    st = _resume(tmp_path, trained)
    assert st.epoch == 3


def _meta_rewrite(data: bytes, fn, arrays=None) -> bytes:
    """A checkpoint with its metadata rewritten by ``fn`` (and its arrays replaced by ``arrays``) and a *valid*
    digest, so that only the checks behind the digest can object."""
    from safetensors.numpy import load

    hlen = int.from_bytes(data[:8], "little")
    meta = json.loads(json.loads(data[8:8 + hlen])["__metadata__"]["meta"])
    return encode_checkpoint(fn(meta), load(data) if arrays is None else arrays)


@pytest.mark.parametrize("case", [
    "empty", "4 bytes", "truncated", "bitflip-data", "bitflip-header", "trailing", "huge-header-len",
    "npz-zip-bomb-renamed", "text", "wrong-shape", "wrong-dtype", "extra-tensor", "missing-tensor", "nan",
    "version-2", "foreign-metadata", "meta-epoch-str", "meta-epoch-too-big", "meta-history-bad", "meta-list",
    "other-payload", "other-config",
])
def test_corrupt_checkpoint_is_one_typed_line(tmp_path, trained, case):
    from safetensors.numpy import load, save

    arrays = load(trained)
    if case == "empty":
        data = b""
    elif case == "4 bytes":
        data = trained[:4]
    elif case == "truncated":
        data = trained[: len(trained) // 2]
    elif case == "bitflip-data":
        data = bytearray(trained)
        data[-10] ^= 0x10
        data = bytes(data)
    elif case == "bitflip-header":
        data = trained.replace(b'"F32"', b'"F64"', 1)
    elif case == "trailing":
        data = trained + b"\0" * 8
    elif case == "huge-header-len":
        data = (1 << 62).to_bytes(8, "little") + trained[8:]
    elif case == "npz-zip-bomb-renamed":
        zp = tmp_path / "bomb.zip"
        with zipfile.ZipFile(zp, "w", zipfile.ZIP_DEFLATED) as z:
            z.writestr("p:fc0.weight.npy", b"\0" * (64 << 20))
        data = zp.read_bytes()
    elif case == "text":
        data = b"hello, I am a checkpoint" * 10
    elif case == "wrong-shape":
        arrays["p:fc0.weight"] = np.zeros((8, 32), np.float32)
        data = encode_checkpoint({}, arrays)
    elif case == "wrong-dtype":
        data = save({**arrays, "p:fc0.bias": arrays["p:fc0.bias"].astype(np.float64)})
    elif case == "extra-tensor":
        data = encode_checkpoint({}, {**arrays, "p:evil": np.zeros(1, np.float32)})
    elif case == "missing-tensor":
        data = encode_checkpoint({}, {k: v for k, v in arrays.items() if k != "s:fc1.bias.exp_avg"})
    elif case == "nan":
        arrays["p:fc1.bias"] = np.full_like(arrays["p:fc1.bias"], np.nan)
        data = _meta_rewrite(trained, lambda m: m, arrays)
    elif case == "version-2":
        data = trained.replace(b'"version":"1"', b'"version":"2"', 1)
    elif case == "foreign-metadata":
        data = save(arrays, {"format": "pickle-please"})
    elif case == "meta-epoch-str":
        data = _meta_rewrite(trained, lambda m: {**m, "epoch": "1"})
    elif case == "meta-epoch-too-big":
        data = _meta_rewrite(trained, lambda m: {**m, "epoch": 10**6})
    elif case == "meta-history-bad":
        data = _meta_rewrite(trained, lambda m: {**m, "history": [{"epoch": 1}]})
    elif case == "meta-list":
        data = _meta_rewrite(trained, lambda m: [m])
    elif case == "other-payload":
        data = _meta_rewrite(trained, lambda m: {**m, "payload_sha256": "0" * 64})
    else:  # other-config
        data = _meta_rewrite(trained, lambda m: {**m, "config": {**m["config"], "lr": 1.0}})
    with pytest.raises(CheckpointError) as exc:
        _resume(tmp_path, data)
    msg = str(exc.value)
    assert "\n" not in msg and ("start over" in msg or "drop --resume" in msg), msg


def test_checkpoint_size_is_bounded_before_reading(tmp_path, trained):
    """A checkpoint bigger than this graph's arrays + header cap is refused from its size alone."""
    expected = {"p:a": (4,)}
    f = tmp_path / "c.st"
    f.write_bytes(encode_checkpoint({}, {"p:a": np.zeros(1 << 20, np.float32)}))
    with pytest.raises(CheckpointError, match="bytes; a checkpoint of this graph"):
        read_checkpoint(f, expected)


def test_old_npz_checkpoint_is_named(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    np.savez(out / "checkpoint.npz", a=np.zeros(1))
    with pytest.raises(CheckpointError, match="older format"):
        Trainer(ADAM / "payload.bin", ADAM / "graph.onnx", epochs=2).train(out, resume=True)


def test_cli_corrupt_checkpoint_exit_code_and_one_line(tmp_path, trained):
    out = tmp_path / "o"
    out.mkdir()
    (out / CHECKPOINT_NAME).write_bytes(b"")
    r = subprocess.run([sys.executable, "-c", "import sys; from edge_sdk.cli.main import main; sys.exit(main(sys.argv[1:]))",
                        "device", "train", "--payload", str(ADAM / "payload.bin"), "--graph", str(ADAM / "graph.onnx"),
                        "--epochs", "2", "--quiet", "--resume", "--out", str(out)], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 5 and r.stderr.startswith("error: CheckpointError:") and r.stderr.count("\n") == 1, r.stderr


def test_soft_fixture_still_trains(tmp_path):
    shutil.copy(SOFT / "payload.bin", tmp_path / "p.bin")
    assert Trainer(tmp_path / "p.bin", SOFT / "graph.onnx", epochs=1).train(tmp_path).epoch == 1
    assert isinstance(split_payload(PAYLOAD)[1], dict)
    assert issubclass(SchemaError, EdgeSdkError)


# ------------------------------------------------------------------------------------------ evaluation data
def _eval_file(tmp_path: Path, kind: str) -> Path:
    """The fixture's local measurements with no rows, with 4 M declared rows (a compression bomb: nothing is
    stored, 2 GiB when read) or with a field that is an external link to another file; or a file whose flipped
    metadata bytes make libhdf5 itself segfault (tests/core/test_beam_h5_attacks.py::CRASH_FILE)."""
    import h5py

    q = tmp_path / f"{kind}.h5"
    if kind == "crash":
        shutil.copyfile(Path(__file__).resolve().parents[1] / "data" / "h5_libhdf5_crash.h5", q)
        return q
    shutil.copyfile(ADAM / "local.h5", q)
    with h5py.File(q, "r+") as h:
        if kind == "external":
            del h["d2d"]
            h["d2d"] = h5py.ExternalLink(str(ADAM / "local.h5"), "/d2d")
            return q
        n = 0 if kind == "empty" else 4_000_000
        for name in list(h):
            h[name][:] = 0
            h[name].resize(n, axis=0)
        h.attrs["n_done"] = n
        h.attrs["n_target"] = n
    return q


@pytest.mark.parametrize("kind,needle", [("empty", "no rows"), ("bomb", "--max-bytes"),
                                         ("external", "--allow-external"), ("crash", "DatasetError")])
def test_eval_data_is_checked_before_training(tmp_path, kind, needle):
    """A bad ``--eval`` file is one typed line (DatasetError, exit 3) before any training step; ``device eval``
    says the same."""
    q = _eval_file(tmp_path, kind)
    out = tmp_path / "o"
    cli = [sys.executable, "-c", "import sys; from edge_sdk.cli.main import main; sys.exit(main(sys.argv[1:]))",
           "device"]
    r = subprocess.run([*cli, "train", "--payload", str(ADAM / "payload.bin"), "--graph", str(ADAM / "graph.onnx"),
                        "--eval", str(q), "--epochs", "1", "--quiet", "--out", str(out)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 3 and r.stderr.count("\n") == 1 and needle in r.stderr, r.stderr
    assert not out.exists() or not any(out.iterdir())  # nothing trained, nothing written
    r = subprocess.run([*cli, "eval", "--model", str(ADAM / "graph.onnx"), "--data", str(q), "--task-from",
                        str(ADAM / "payload.bin")],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 3 and r.stderr.count("\n") == 1 and needle in r.stderr, r.stderr
