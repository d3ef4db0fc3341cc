"""Device runtime (numpy + onnxruntime only) on the shipped fixtures in tests/device/data/ (made by
tools/make_device_fixtures.py). Runs in the torch-free venv of tools/test_device_minimal.sh too."""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from edge_sdk.device.evaluate import evaluate_beam, mlp_inference_model, predict
from edge_sdk.device.trainer import TrainConfig, Trainer
from edge_sdk.errors import CheckpointError, DeviceError, EdgeSdkError, SchemaError
from edge_sdk.modelspec import ModelSpec, TrainRecipe, init_params

DATA = Path(__file__).parent / "data"
ADAM = DATA / "beam_adam"  # epoch graph (format v2, the default export)
SOFT = DATA / "soft_sgd"  # epoch graph with a soft-label group
ADAM_STEP = DATA / "beam_adam_step"  # the same payload samples with a step graph (format v1)
REPO = Path(__file__).resolve().parents[2]


def _forward(params, x):
    n = len(params) // 2
    h = x
    for i in range(n):
        h = h @ params[f"fc{i}.weight"].T + params[f"fc{i}.bias"]
        if i < n - 1:
            h = np.maximum(h, 0)
    return h


def test_import_and_training_never_load_torch(tmp_path):
    code = (
        "import sys\n"
        "import edge_sdk.device, edge_sdk.device.trainer, edge_sdk.device.evaluate, edge_sdk.cli.device_cmd\n"
        "from edge_sdk.device.trainer import Trainer\n"
        f"t = Trainer(r'{ADAM / 'payload.bin'}', r'{ADAM / 'graph.onnx'}', epochs=1)\n"
        f"st = t.train(r'{tmp_path}')\n"
        f"t.export_model(r'{tmp_path / 'm.onnx'}', st.params)\n"
        "bad = [m for m in sys.modules if m == 'torch' or m.startswith('torch.') or m.startswith('edge_sdk.server')]\n"
        "assert not bad, bad\n"
        "print('ok')\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "ok" in r.stdout, r.stderr


def test_train_is_deterministic_and_learns():
    a = Trainer(ADAM / "payload.bin", ADAM / "graph.onnx", epochs=4)
    b = Trainer(ADAM / "payload.bin", ADAM / "graph.onnx", epochs=4)
    sa, sb = a.train(), b.train()
    for n in sa.params:
        np.testing.assert_array_equal(sa.params[n], sb.params[n])
    losses = [h["loss"] for h in sa.history]
    assert losses[-1] < losses[0]
    assert sa.step == 4 * a.steps_per_epoch == a.total_steps
    assert a.bytes_received == (ADAM / "payload.bin").stat().st_size + (ADAM / "graph.onnx").stat().st_size


def test_starts_from_init_params():
    t = Trainer(ADAM / "payload.bin", ADAM / "graph.onnx", epochs=1, seed=7)
    st = t.initial_state()
    ref = init_params(t.graph.model, 7)
    for n in ref:
        np.testing.assert_array_equal(st.params[n], ref[n])
    assert all(not v.any() for v in st.state.values())


def test_soft_label_payload_trains():
    t = Trainer(SOFT / "payload.bin", SOFT / "graph.onnx", epochs=6)
    assert t.graph.has_soft and t.data.has_soft and t.graph.optimizer == "sgd"
    st = t.train()
    assert all(math.isfinite(h["loss"]) for h in st.history)
    assert st.history[-1]["loss"] < st.history[0]["loss"]


def test_fixture_variants():
    assert Trainer(ADAM / "payload.bin", ADAM / "graph.onnx").graph.variant == "epoch"
    assert Trainer(SOFT / "payload.bin", SOFT / "graph.onnx").graph.variant == "epoch"
    assert Trainer(ADAM_STEP / "payload.bin", ADAM_STEP / "graph.onnx").graph.variant == "step"


def test_step_graph_v1_trains_like_the_epoch_graph():
    """A device keeps training format-v1 (step) graphs; both variants follow the same batches, schedule and
    optimizer, so the trained parameters agree to float rounding."""
    a = Trainer(ADAM / "payload.bin", ADAM / "graph.onnx", epochs=3).train()
    b = Trainer(ADAM_STEP / "payload.bin", ADAM_STEP / "graph.onnx", epochs=3).train()
    for n in a.params:
        np.testing.assert_allclose(a.params[n], b.params[n], rtol=1e-4, atol=1e-6, err_msg=n)
    for n in a.state:
        np.testing.assert_allclose(a.state[n], b.state[n], rtol=1e-3, atol=1e-7, err_msg=n)
    assert [h["loss"] for h in a.history] == pytest.approx([h["loss"] for h in b.history], rel=1e-5)


@pytest.mark.parametrize("bundle", [ADAM, SOFT])
def test_epoch_chunks_do_not_change_training(bundle):
    """A decode budget of a few rows splits every epoch into many runs; the result equals whole-epoch runs."""
    from edge_sdk.device.graph import EpochExecutor

    whole = Trainer(bundle / "payload.bin", bundle / "graph.onnx", epochs=2)
    small = Trainer(bundle / "payload.bin", bundle / "graph.onnx", epochs=2)
    small.executor = EpochExecutor(small.graph, small.data, decode_budget=3 * 4 * 40 * 10)
    assert len(small.executor.chunks([np.arange(whole.config.recipe.batch_size)] * whole.steps_per_epoch)) > 2
    assert len(whole.executor.chunks([np.arange(whole.config.recipe.batch_size)] * whole.steps_per_epoch)) == 1
    sw, ss = whole.train(), small.train()
    for n in sw.params:
        np.testing.assert_allclose(sw.params[n], ss.params[n], rtol=0, atol=1e-6, err_msg=n)


def test_epoch_progress_counts_every_step():
    t = Trainer(ADAM / "payload.bin", ADAM / "graph.onnx", epochs=2, batch_size=50)  # 512 = 10 x 50 + 12
    seen: list[int] = []
    st = t.initial_state()
    t.train_epoch(st, seen.append)
    assert sum(seen) == t.steps_per_epoch == 11 and st.step == 11
    assert len(seen) == 2  # one run for the ten full batches, one for the last, smaller batch


def test_nan_loss_is_a_device_error():
    with pytest.raises(DeviceError, match="loss became"):
        Trainer(ADAM / "payload.bin", ADAM / "graph.onnx", epochs=1, lr=1e30, schedule="constant").train()


def test_graph_must_match_payload_digest(tmp_path):
    with pytest.raises(DeviceError, match="graph does not match the payload"):
        Trainer(ADAM / "payload.bin", SOFT / "graph.onnx")
    g = tmp_path / "g.onnx"
    data = bytearray((ADAM / "graph.onnx").read_bytes())
    data[-1] ^= 1
    g.write_bytes(bytes(data))
    with pytest.raises(DeviceError):
        Trainer(ADAM / "payload.bin", g)


def test_signature_checked_against_trusted_keys(tmp_path):
    from edge_sdk.payload import generate_keypair, save_public_key, sign_payload

    p = tmp_path / "p.bin"
    shutil.copy(ADAM / "payload.bin", p)
    priv, pub = generate_keypair()
    _, other = generate_keypair()
    save_public_key(tmp_path / "pub.pem", pub)
    save_public_key(tmp_path / "other.pem", other)
    with pytest.raises(EdgeSdkError):  # unsigned, signature required
        Trainer(p, ADAM / "graph.onnx", trusted_keys=[tmp_path / "pub.pem"], require_signature=True)
    sign_payload(p, priv)
    t = Trainer(p, ADAM / "graph.onnx", trusted_keys=[tmp_path / "pub.pem"], require_signature=True)
    assert t.payload.signature_status == "verified"
    with pytest.raises(EdgeSdkError):
        Trainer(p, ADAM / "graph.onnx", trusted_keys=[tmp_path / "other.pem"], require_signature=True)


def test_inference_model_standalone(tmp_path):
    spec = ModelSpec(input_dim=5, num_classes=4, hidden=(7, 3))
    params = init_params(spec, 3)
    sess = ort.InferenceSession(mlp_inference_model(spec, params), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).standard_normal((11, 5)).astype(np.float32)
    np.testing.assert_allclose(predict(sess, x), _forward(params, x), rtol=1e-5, atol=1e-6)
    assert not sess.get_inputs()[1:] and sess.get_inputs()[0].name == "features"
    with pytest.raises(DeviceError):
        mlp_inference_model(spec, {k: v for k, v in params.items() if k != "fc1.bias"})


def test_trained_model_export_and_eval(tmp_path):
    t = Trainer(ADAM / "payload.bin", ADAM / "graph.onnx", epochs=2)
    st = t.train(tmp_path)
    t.export_model(tmp_path / "model.onnx", st.params)
    sess = ort.InferenceSession(str(tmp_path / "model.onnx"), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(1).standard_normal((9, t.graph.model.input_dim)).astype(np.float32)
    np.testing.assert_allclose(predict(sess, x), _forward(st.params, x), rtol=1e-5, atol=1e-5)
    k = evaluate_beam(tmp_path / "model.onnx", ADAM / "local.h5")  # task from the model's metadata
    assert 0.0 <= k["top1"] <= k["top2"] <= k["top4"] <= 1.0 and k["n"] > 0


def test_lr_schedules():
    c = TrainRecipe(lr=0.1, schedule="cosine", steps=100)
    assert c.lr_at(0) == pytest.approx(0.1) and c.lr_at(50) == pytest.approx(0.05)
    s = TrainRecipe(lr=0.1, schedule="step", decay_every=2, gamma=0.5, steps=10)
    assert [s.lr_at(t) for t in range(0, 10, 2)] == pytest.approx([0.1, 0.05, 0.025, 0.0125, 0.00625])
    with pytest.raises(EdgeSdkError):
        TrainRecipe(schedule="linear")
    with pytest.raises(EdgeSdkError):
        TrainConfig(TrainRecipe(), seed=-1)


def test_follows_the_payload_recipe_exactly():
    """No overrides: the recipe in the payload decides steps (a partial last epoch included), lr, batch size."""
    with __import__("edge_sdk.payload", fromlist=["read_payload"]).read_payload(ADAM / "payload.bin") as p:
        stored = TrainRecipe.from_dict(p.task["train"])
    t = Trainer(ADAM / "payload.bin", ADAM / "graph.onnx")
    assert t.config.recipe == stored and t.config.seed == 0
    odd = Trainer(ADAM / "payload.bin", ADAM / "graph.onnx", steps=stored.steps_per_epoch(t.data.n) + 3)
    st = odd.train()
    assert st.step == odd.total_steps and st.epoch == 2
    assert [h["step"] for h in st.history] == [odd.steps_per_epoch, odd.total_steps]
    with pytest.raises(EdgeSdkError, match="not both"):
        Trainer(ADAM / "payload.bin", ADAM / "graph.onnx", steps=5, epochs=1)
    with pytest.raises(DeviceError, match="graph implements 'adam'"):
        Trainer(ADAM / "payload.bin", ADAM / "graph.onnx", optimizer="sgd")


def test_resume_at_any_step_matches_uninterrupted(tmp_path):
    t = Trainer(ADAM / "payload.bin", ADAM / "graph.onnx", steps=17, batch_size=64)
    full = t.initial_state()
    t.run_steps(full, 17)
    part = t.initial_state()
    t.run_steps(part, 5)  # mid-epoch
    t.save_checkpoint(tmp_path / "c.safetensors", part)
    back = t.load_checkpoint(tmp_path / "c.safetensors")
    assert back.step == 5
    t.run_steps(back, 17)
    for k in full.params:
        np.testing.assert_array_equal(full.params[k], back.params[k])


@pytest.mark.parametrize("train,msg", [
    ({"optimizer": "adam", "epochs": 3}, "task.train has no 'version' and key"),
    ({"version": 2}, "task.train.version 2"),
    ({"version": 1, "batch_size": "64"}, "task.train.batch_size must be an integer"),
    ({"version": 1, "lr": "fast"}, "task.train.lr must be a number"),
    ({"version": 1, "lr": -1.0}, "task.train.lr must be > 0"),
    ({"version": 1, "epochs": 3}, "task.train has unknown key"),
    ({"version": 1, "steps": 10**12}, "task.train.steps must be in"),
    ([1, 2], "task.train must be a JSON object"),
])
def test_bad_payload_recipe_is_a_typed_error(tmp_path, train, msg):
    """A payload whose task.train is malformed fails before training with a SchemaError naming the field."""
    from edge_sdk.payload import SampleGroup, read_payload, write_payload

    with read_payload(ADAM / "payload.bin") as p:
        groups = [SampleGroup(g.name, g.kind, g.bits, data=np.array(g.codes()), params=dict(g.params()),
                              labels=np.array(g.labels())) for g in p.groups]
        task = {**p.task, "train": train}
        write_payload(tmp_path / "p.bin", groups, num_classes=p.num_classes, task=task, graph=p.graph)
    with pytest.raises(SchemaError, match=msg):
        Trainer(tmp_path / "p.bin", ADAM / "graph.onnx")


def test_resume_reads_a_checkpoint_that_predates_label_smoothing(tmp_path):
    """A checkpoint written by edge-sdk 0.2 has no label_smoothing in its recipe: it resumes as the default 0, and a
    run that smooths labels still refuses it (a different config)."""
    from edge_sdk.device.checkpoint import read_checkpoint, write_checkpoint

    t = Trainer(ADAM / "payload.bin", ADAM / "graph.onnx", steps=7, batch_size=64)
    st = t.initial_state()
    t.run_steps(st, 3)
    path = tmp_path / "c.safetensors"
    t.save_checkpoint(path, st)
    meta, arrays = read_checkpoint(path, t._ckpt_shapes())
    del meta["config"]["recipe"]["label_smoothing"]
    write_checkpoint(path, meta, arrays)
    assert t.load_checkpoint(path).step == 3
    meta["config"]["recipe"]["label_smoothing"] = 0.1  # a different config, also in the old form
    write_checkpoint(path, meta, arrays)
    with pytest.raises(CheckpointError, match="different config"):
        t.load_checkpoint(path)


def test_resume_refuses_other_config(tmp_path):
    Trainer(ADAM / "payload.bin", ADAM / "graph.onnx", epochs=2).train(tmp_path, stop_after_epochs=1)
    with pytest.raises(CheckpointError, match="different config"):
        Trainer(ADAM / "payload.bin", ADAM / "graph.onnx", epochs=2, lr=0.5).train(tmp_path, resume=True)


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-c", "import sys; from edge_sdk.cli.main import main; sys.exit(main(sys.argv[1:]))", *args]


def test_kill_and_resume_matches_uninterrupted(tmp_path):
    """SIGKILL a CLI training run after its first checkpoint, resume, get exactly the uninterrupted result."""
    common = ["device", "train", "--payload", str(ADAM / "payload.bin"), "--graph", str(ADAM / "graph.onnx"),
              "--epochs", "40", "--batch-size", "8", "--quiet"]
    killed = tmp_path / "killed"
    proc = subprocess.Popen(_cli(*common, "--out", str(killed)), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ckpt = killed / "checkpoint.safetensors"
    deadline = time.time() + 60
    while not ckpt.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "run finished before it could be killed"
    from safetensors import safe_open

    with safe_open(str(ckpt), framework="np") as z:
        done = json.loads(z.metadata()["meta"])["epoch"]
    assert 1 <= done < 40
    r = subprocess.run(_cli(*common, "--resume", "--out", str(killed)), capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    full = tmp_path / "full"
    r = subprocess.run(_cli(*common, "--out", str(full)), capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    with safe_open(str(killed / "checkpoint.safetensors"), framework="np") as a, \
            safe_open(str(full / "checkpoint.safetensors"), framework="np") as b:
        assert sorted(a.keys()) == sorted(b.keys())
        for k in a.keys():
            np.testing.assert_array_equal(a.get_tensor(k), b.get_tensor(k), err_msg=k)
    assert (killed / "model.onnx").read_bytes() == (full / "model.onnx").read_bytes()


def test_cli_train_report_and_eval(tmp_path):
    from edge_sdk.cli.main import main

    out = tmp_path / "run"
    rc = main(["device", "train", "--payload", str(ADAM / "payload.bin"), "--graph", str(ADAM / "graph.onnx"),
               "--eval", str(ADAM / "local.h5"), "--epochs", "2", "--quiet", "--out", str(out)])
    assert rc == 0
    rep = json.loads((out / "report.json").read_text())
    assert rep["bytes_received"] == rep["payload_bytes"] + rep["graph_bytes"]
    assert rep["epochs"] == 2 and rep["steps_per_s"] > 0 and rep["peak_rss_mb"] > 0
    assert set(rep["kpis"]) >= {"top1", "top1_1db", "rsrp_diff_mean"}
    r = subprocess.run(_cli("device", "eval", "--model", str(out / "model.onnx"), "--data", str(ADAM / "local.h5"),
                            "--task-from", str(ADAM / "payload.bin")), capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["top1"] == pytest.approx(rep["kpis"]["top1"])
    bad = subprocess.run(_cli("device", "train", "--payload", str(ADAM / "payload.bin"), "--graph",
                              str(SOFT / "graph.onnx"), "--out", str(tmp_path / "x")),
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == DeviceError.exit_code and "DeviceError" in bad.stderr
    assert "Traceback" not in bad.stderr


def test_fixture_manifest_matches_files():
    man = json.loads((DATA / "MANIFEST.json").read_text())
    for name, m in man.items():
        assert (DATA / name / "graph.onnx").stat().st_size == m["graph_bytes"]
        assert (DATA / name / "payload.bin").stat().st_size == m["payload_bytes"]


@pytest.mark.skipif(os.environ.get("EDGE_SDK_ORT_MIN") is None, reason="set by tools/test_device_minimal.sh")
def test_running_the_claimed_onnxruntime():
    assert ort.__version__ == os.environ["EDGE_SDK_ORT_MIN"]


def test_graph_groups_must_match_payload_groups():
    from types import SimpleNamespace

    from edge_sdk.device.graph import check_groups, load_train_graph
    from edge_sdk.payload import read_payload

    g = load_train_graph((ADAM / "graph.onnx").read_bytes())
    with read_payload(ADAM / "payload.bin") as p:
        check_groups(g, p.groups, p.num_classes)  # the matching pair passes
        wrong = [SimpleNamespace(kind=x.kind, bits=x.bits + 1, d=x.d, role=x.role) for x in p.groups]
        with pytest.raises(DeviceError, match="graph expects"):
            check_groups(g, wrong, p.num_classes)
        with pytest.raises(DeviceError, match="expects 2 groups"):
            check_groups(g, p.groups[:1], p.num_classes)
        with pytest.raises(DeviceError, match="classes"):
            check_groups(g, p.groups, p.num_classes + 1)
