"""ADQ: quantizer exactness vs edge_sdk.codecs, budgeted allocation, drop case, pruning, CLI end to end."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from edge_sdk import codecs  # noqa: E402
from edge_sdk.errors import ConfigError  # noqa: E402
from edge_sdk.server.adq import allocation as A  # noqa: E402
from edge_sdk.server.adq import quantize as Q  # noqa: E402
from edge_sdk.server.adq.cost import ByteCost, WidthCost  # noqa: E402
from edge_sdk.server.adq.pruning import PRUNERS, CCSPrune, get_method  # noqa: E402
from edge_sdk.server.payload_io import PayloadCost, write_compact  # noqa: E402
from edge_sdk.units import Budget  # noqa: E402

torch.set_num_threads(1)


def _x(n=300, d=8, seed=0):
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal((n, d)) * rng.uniform(0.01, 50, (n, 1))).astype(np.float32)
    x[0] = 0.0  # all-zero sample
    x[1, :] = 3.0  # ties / exact max
    return x


@pytest.mark.parametrize("bits", range(2, 9))
@pytest.mark.parametrize("scale_dtype", ["float32", "float16"])
def test_torch_quantize_equals_codecs(bits, scale_dtype):
    x = _x()
    codes, scale = Q.quantize_np(x, bits, scale_dtype)
    ref_codes, ref_p = codecs.quantize(x, "symmetric_per_sample", bits, {"scale": scale} if scale_dtype == "float16" else None)
    assert codes.dtype == np.uint8 and codes.max() <= 2 * codecs.q_max(bits)
    np.testing.assert_array_equal(codes, ref_codes)
    np.testing.assert_array_equal(scale, ref_p["scale"])
    deq = Q.dequantize(torch.from_numpy(codes), bits, torch.from_numpy(scale)).numpy()
    np.testing.assert_array_equal(deq, codecs.dequantize(ref_codes, "symmetric_per_sample", bits, ref_p))
    if scale_dtype == "float32":  # max |x| maps exactly onto the top code
        big = np.abs(x).argmax(axis=1)
        assert np.all((codes[np.arange(len(x)), big] == 0) | (codes[np.arange(len(x)), big] == 2 * codecs.q_max(bits))
                      | (scale == 0))
    err = np.abs(deq - x).max(axis=1)
    assert np.all(err <= scale * 0.5 * (1.0001) + (scale_dtype == "float16") * np.abs(x).max(axis=1) * 2e-3)


def test_on_the_fly_store_matches_codecs():
    x = _x(50, 8)
    store = Q.QuantizedStore(8)
    expect = []
    for bits, rows in ((2, slice(0, 20)), (5, slice(20, 35)), (32, slice(35, 50))):
        if bits == 32:
            store.add(32, torch.from_numpy(x[rows]), None)
            expect.append(x[rows])
            continue
        c, p = codecs.quantize(x[rows], "symmetric_per_sample", bits)
        store.add(bits, c, p["scale"])
        expect.append(codecs.dequantize(c, "symmetric_per_sample", bits, p))
    expect = np.concatenate(expect)
    idx = np.random.default_rng(0).permutation(50)[:17]
    np.testing.assert_array_equal(store.batch(idx).numpy(), expect[idx])
    assert len(store) == 50
    with pytest.raises(ConfigError):
        store.add(3, np.zeros((2, 8), np.float32), np.ones(2))


def test_quantize_rejects_bad_width():
    with pytest.raises(ConfigError):
        Q.quantize(torch.zeros(2, 3), 1)
    with pytest.raises(ConfigError):
        Q.quantize(torch.zeros(2, 3), 4, scale_dtype="bfloat16")


def test_byte_cost_formula():
    c = ByteCost(d=8, num_classes=32, scale_dtype="float32")
    # 10 samples at 3 bits: 3 B codes + 4 B scale each, labels 10 * 5 bits = 7 B
    assert c.group_bytes(3, 10) == 10 * (3 + 4) + 7
    assert c.group_bytes(0, 10) == 0
    assert c.group_bytes(32, 2) == 2 * 32 + 2
    assert ByteCost(d=8, num_classes=32, scale_dtype="float16").group_bytes(2, 4) == 4 * (2 + 2) + 3


def _payload_cost(d=8, c=32, sd="float32"):
    return WidthCost(d=d, num_classes=c, scale_dtype=sd,
                     payload=PayloadCost(num_classes=c, task={"kind": "test"}, provenance={"t": 1}))


def parse_budget(text: str, n: int, d: int) -> int:
    return Budget.parse(text).resolve(n * d * 4)


@pytest.mark.parametrize("sd", ["float32", "float16"])
@pytest.mark.parametrize("factor", [1.5, 2, 4, 8, 16, 40, 160])
def test_allocators_never_exceed_budget(sd, factor):
    rng = np.random.default_rng(int(factor * 10))
    n, d = 257, 8
    s = rng.random(n)
    labels = rng.integers(0, 32, n)
    for cost in (ByteCost(d=d, num_classes=32, scale_dtype=sd), _payload_cost(d, 32, sd)):
        budget = parse_budget(f"{factor}x", n, d)
        if cost.total([]) > budget:  # below the header overhead: a clear error, not an over-budget set
            with pytest.raises(ConfigError, match="overhead"):
                A.allocate_two_groups(s, budget, cost)
            continue
        allocs = [
            A.allocate_two_groups(s, budget, cost),
            A.allocate_two_groups(s, budget, cost, labels=labels),
            A.allocate_k_groups(s, budget, cost, k=3),
            A.allocate_k_groups(s, budget, cost, k=4, allow_drop=False),
            A.allocate_threshold(s, budget, cost),
            A.allocate_uniform(n, budget, cost),
            A.allocate_fixed_random(n, budget, cost, seed=3),
        ]
        for a in allocs:
            assert a.nbytes == cost.of_bits(a.bits) <= budget, (a.mode, a.nbytes, budget)
            assert set(np.unique(a.bits)) <= {0, 2, 3, 4, 5, 6, 7, 8, 16}


def test_two_groups_gives_more_bits_to_sensitive_half():
    n, d = 100, 64
    s = np.linspace(0, 1, n)
    cost = ByteCost(d=d, num_classes=10)
    budget = parse_budget("8x", n, d)  # 4-bit average: fits e.g. (5, 2) / (4, 3) with scales
    a = A.allocate_two_groups(s, budget, cost)
    assert a.mode == "2-groups" and a.info["b_high"] > a.info["b_low"] > 0
    assert np.all(a.bits[s >= np.median(s)] == a.info["b_high"])
    assert (a.bits == a.info["b_high"]).sum() == n // 2
    # the search spends the budget: no strictly better non-dropping pair exists
    assert budget - a.nbytes < cost.total([(a.info["b_high"] + 1, 50), (a.info["b_low"], 50)]) - a.nbytes + 1


def test_drop_case_and_fallback():
    n, d = 200, 8
    s = np.arange(n, dtype=float)
    cost = ByteCost(d=d, num_classes=32, scale_dtype="float32")
    # per sample: 2-bit = 2 + 4 + 5/8 B -> a 16x budget (2 B/sample) cannot keep half the samples at 2 bits
    budget = parse_budget("16x", n, d)
    a = A.allocate_two_groups(s, budget, cost)
    assert a.mode == "drop-fallback" and a.nbytes <= budget
    kept = np.flatnonzero(a.bits > 0)
    assert kept.size > 0 and np.all(a.bits[kept] == 2)
    assert kept.min() == n - kept.size  # the most sensitive samples are the ones kept
    # b_low = 0 chosen by the pair search at a moderate budget (half dropped, half stored)
    budget2 = cost.total([(8, 100)])
    b = A.allocate_two_groups(s, budget2, cost)
    assert b.mode == "2-groups" and b.info["b_low"] == 0 and (b.bits == 0).sum() == 100
    assert b.nbytes <= budget2
    # never drops when a non-dropping pair fits
    c = A.allocate_two_groups(s, cost.total([(3, 200)]), cost)
    assert (c.bits > 0).all()


def test_class_balanced_split_and_fallback_keep_every_class():
    rng = np.random.default_rng(0)
    n, d = 400, 8
    labels = np.repeat(np.arange(4), 100)
    s = rng.random(n) + labels  # class 3 is the most sensitive everywhere
    cost = ByteCost(d=d, num_classes=4)
    a = A.allocate_two_groups(s, cost.total([(8, 200)]), cost, labels=labels)
    assert a.mode == "2-groups"
    assert all((a.bits[labels == c] == a.info["b_high"]).sum() == 50 for c in range(4))
    glob = A.allocate_two_groups(s, cost.total([(8, 200)]), cost)
    assert (glob.bits[labels == 0] > 0).sum() == 0  # the global split keeps no sample of class 0
    fb = A.allocate_two_groups(s, cost.total([(2, 80)]), cost, labels=labels)
    assert fb.mode == "drop-fallback"
    kept = np.bincount(labels[fb.bits > 0], minlength=4)
    assert kept.min() >= 19 and kept.sum() <= 80


@pytest.mark.parametrize("sd", ["float32", "float16"])
def test_planned_size_equals_written_payload(tmp_path, sd):
    from types import SimpleNamespace

    from edge_sdk.payload import read_payload
    from edge_sdk.server.adq.family import QuantizeConfig, Selection, build, width_cost

    rng = np.random.default_rng(0)
    n, d, c = 90, 8, 32
    data = SimpleNamespace(X_train=rng.standard_normal((n, d)).astype(np.float32), y_train=rng.integers(0, c, n),
                           num_classes=c, task={"kind": "beam", "note": "test"})
    cfg = QuantizeConfig(scale_dtype=sd)
    pc = PayloadCost(num_classes=c, task=data.task, provenance={"t": 1})
    cost = width_cost(data, cfg, pc)
    bits = np.array([16] * 20 + [5] * 30 + [2] * 25 + [0] * 15)
    alloc = A.Allocation(bits, cost.of_bits(bits), cost.of_bits(bits), "manual")
    sel = Selection(np.arange(n), alloc, cost.layouts_of_bits(bits), alloc.nbytes, alloc.budget, {})
    cs = build(data, cfg, sel)
    info = write_compact(tmp_path / "p.epl", cs, pc, planned_bytes=sel.nbytes)
    assert info.size == sel.nbytes == (tmp_path / "p.epl").stat().st_size
    p = read_payload(tmp_path / "p.epl")
    assert [g.bits for g in p.groups] == [16, 5, 2]  # largest width first
    X, y = p.samples()
    # the device decodes exactly the rows (and the row order) the server evaluates
    np.testing.assert_array_equal(X, cs.X)
    np.testing.assert_array_equal(y, cs.y)
    assert X.shape[0] == 75 and sorted(y.tolist()) == sorted(data.y_train[:75].tolist())


def test_k_groups_monotone_widths():
    s = np.random.default_rng(1).random(300)
    cost = ByteCost(d=16, num_classes=10)
    a = A.allocate_k_groups(s, cost.total([(4, 300)]), cost, k=4)
    gb = a.info["group_bits"]
    assert gb == sorted(gb, reverse=True) and len(set(gb)) == 4
    order = np.argsort(-s)
    assert np.all(np.diff(a.bits[order]) <= 0)  # more sensitive never gets fewer bits


def test_allocation_errors():
    cost = ByteCost(d=4, num_classes=2)
    with pytest.raises(ConfigError):
        A.allocate_two_groups(np.array([np.nan, 1.0]), 100, cost)
    with pytest.raises(ConfigError):
        A.allocate_two_groups(np.ones(4), 0, cost)
    with pytest.raises(ConfigError):
        parse_budget("banana", 10, 4)
    assert parse_budget("16x", 100, 8) == 200 == parse_budget("93.75%", 100, 8)


def test_pruning_methods():
    rng = np.random.default_rng(0)
    n = 1000
    scores = rng.random(n)
    assert sorted(PRUNERS) == ["ccs", "el2n", "random"]
    r = get_method("random").select(n, 0.1, 0, None)
    assert r.size == 100 and np.unique(r).size == 100
    e = get_method("el2n").select(n, 0.1, 0, scores)
    assert np.all(scores[e] >= np.sort(scores)[-100])
    c = CCSPrune(hard_cutoff=0.2, n_bins=10).select(n, 0.1, 0, scores)
    assert c.size == 100 and np.unique(c).size == 100
    assert scores[c].max() < np.sort(scores)[-200]  # hardest 20 % cut
    # coverage: every score decile of the kept range is represented
    assert np.unique(np.floor(scores[c] / 0.08)).size >= 9
    with pytest.raises(ConfigError):
        get_method("el2n").select(n, 0.1, 0, None)
    with pytest.raises(ConfigError):
        get_method("nope")


def test_sensitivity_vmap_matches_loop():
    from edge_sdk.modelspec import ModelSpec
    from edge_sdk.server.adq.sensitivity import sensitivity_loop, sensitivity_scores
    from edge_sdk.server.adq.training import as_module
    from edge_sdk.server.models import init_torch_params

    spec = ModelSpec(kind="mlp", input_dim=8, num_classes=5, hidden=(16,))
    m = as_module(spec, init_torch_params(spec, 1))
    x = _x(40)
    y = np.random.default_rng(1).integers(0, 5, 40)
    a = sensitivity_scores(m, x, y, bits=2, batch_size=16)
    b = sensitivity_loop(m, x, y, bits=2)
    np.testing.assert_allclose(a, b, atol=1e-5)
    assert np.all((a >= 0) & (a <= 2)) and a.std() > 0
    hi = sensitivity_scores(m, x, y, bits=8)
    assert hi.mean() < a.mean()  # 8-bit copies deviate less than 2-bit copies


@pytest.fixture(scope="module")
def beam_files(tmp_path_factory):
    from edge_sdk.beam.h5writer import write_beam_h5
    from edge_sdk.beam.synthetic import make_synthetic_beam_dataset

    d = tmp_path_factory.mktemp("beam")
    write_beam_h5(d / "train.h5", make_synthetic_beam_dataset(n=300, seed=0))
    write_beam_h5(d / "test.h5", make_synthetic_beam_dataset(n=120, seed=1))
    return d / "train.h5", d / "test.h5"


def test_pruning_then_quantization(beam_files):
    from edge_sdk.modelspec import TrainRecipe
    from edge_sdk.server.adq.family import QuantizeConfig, build, plan
    from edge_sdk.server.datasets import load_beam

    data = load_beam(*beam_files)
    cfg = QuantizeConfig(method="adq", prune="ccs", keep=0.5, el2n_epochs=1)
    budget = Budget.parse("2x").resolve(data.full_float32_bytes)
    pc = PayloadCost(num_classes=data.num_classes, task=data.task, provenance={"t": 1})
    sel = plan(data, cfg, budget, pc, TrainRecipe(steps=5))
    assert sel.cand.size <= 150 and sel.nbytes <= budget
    cs = build(data, cfg, sel)
    assert {g.bits for g in cs.groups} <= {*range(2, 9), 16} and cs.n == int((sel.alloc.bits > 0).sum())


def test_cli_end_to_end_graph_then_device_train(beam_files, tmp_path, capsys):
    """Default CLI run writes graph.onnx + a 2-group payload naming it; the device trainer trains 1 epoch on it."""
    from edge_sdk.cli.main import main
    from edge_sdk.device.trainer import Trainer
    from edge_sdk.payload import read_payload
    from edge_sdk.server.pipeline import validate_report

    out = tmp_path / "run"
    rc = main(["quantize", "--method", "adq", "--data", str(beam_files[0]), "--test", str(beam_files[1]),
               "--compression", "2x", "--no-drop", "--seeds", "2", "--steps", "5", "--ref-epochs", "1",
               "--scale-dtype", "float16", "--out", str(out), "--no-progress"])
    assert rc == 0
    assert "adq: " in capsys.readouterr().out  # --no-progress keeps the result summary (issue 16)
    rep = json.loads((out / "report.json").read_text())
    validate_report(rep)
    assert rep["command"] == "quantize" and rep["method"] == "adq" and len(rep["seeds"]) == 2
    size = (out / "payload.epl").stat().st_size
    assert rep["payload_bytes"] == size == rep["extra"]["planned_bytes"] <= rep["budget"]["bytes"]
    g = rep["extra"]["graph"]
    graph_bytes = (out / "graph.onnx").read_bytes()
    assert g["path"] == str(out / "graph.onnx") and g["size"] == len(graph_bytes)
    assert g["sha256"] == hashlib.sha256(graph_bytes).hexdigest()
    assert rep["extra"]["bytes_to_device"] == size + len(graph_bytes)
    assert not list(out.glob(".graph.onnx.*"))  # candidate graphs cleaned up
    p = read_payload(out / "payload.epl")
    assert p.graph == {"sha256": g["sha256"], "size": g["size"]}
    widths = [gr.bits for gr in p.groups]  # one group per width (v1 names them b<bits>; v2 stores no names)
    assert len(widths) == len(set(widths)) == 2
    X, y = p.samples()
    assert X.shape[0] == rep["extra"]["stored_samples"] and X.shape[1] == 8
    tr = Trainer(out / "payload.epl", out / "graph.onnx", epochs=1, batch_size=64)
    ev = rep["eval"]["config"]
    assert tr.graph.optimizer == "sgd" and tr.config.recipe.with_overrides(steps=ev["recipe"]["steps"]).to_dict() == {
        **ev["recipe"], "batch_size": 64}
    st = tr.initial_state()
    p0 = {k: v.copy() for k, v in st.params.items()}
    loss = tr.train_epoch(st)  # shuffled batches mix rows of both width groups
    assert st.epoch == 1 and st.step == -(-X.shape[0] // 64) and np.isfinite(loss) and loss > 0
    assert all(np.isfinite(v).all() for v in st.params.values())
    assert any(not np.array_equal(p0[k], st.params[k]) for k in p0)
    # bad input: typed error, non-zero exit
    assert main(["quantize", "--dataset", "digits", "--out", str(out)]) == 2
    assert main(["quantize", "--data", str(beam_files[0]), "--test", str(beam_files[1]), "--budget", "10",
                 "--seeds", "1", "--steps", "1", "--out", str(out), "--no-progress", "--no-graph"]) == 2


def test_cli_no_graph(beam_files, tmp_path):
    from edge_sdk.cli.main import main
    from edge_sdk.payload import read_payload

    out = tmp_path / "run"
    out.mkdir()
    (out / "graph.onnx").write_bytes(b"stale")
    assert main(["quantize", "--method", "uniform", "--data", str(beam_files[0]), "--test", str(beam_files[1]),
                 "--compression", "8x", "--seeds", "1", "--steps", "2", "--out", str(out), "--no-progress",
                 "--no-graph"]) == 0
    rep = json.loads((out / "report.json").read_text())
    assert rep["extra"]["graph"] is None and rep["extra"]["graph_note"] == "disabled with --no-graph"
    assert not (out / "graph.onnx").exists()  # a stale graph would not match the new payload
    assert read_payload(out / "payload.epl").graph is None
    assert rep["payload_bytes"] == rep["extra"]["planned_bytes"] <= rep["budget"]["bytes"]


def _plan_data(n=400, d=16, c=16):
    from types import SimpleNamespace

    from edge_sdk.modelspec import ModelSpec

    rng = np.random.default_rng(0)
    return SimpleNamespace(X_train=rng.standard_normal((n, d)).astype(np.float32), y_train=rng.integers(0, c, n),
                           num_classes=c, task={"kind": "beam"}, spec=ModelSpec(kind="mlp", input_dim=d, num_classes=c,
                                                                               hidden=(4,)))


def _fake_exporter(size_of, calls):
    """Stands in for write_graph_for_payload: writes ``size_of(widths)`` bytes (no torch export; fast)."""
    from edge_sdk.server.onnx_export.export import GraphInfo

    def export(lays, out_path):
        widths = tuple(int(g.bits) for g in lays)
        calls.append(widths)
        data = bytes([len(calls) % 256]) * size_of(widths)
        out_path.write_bytes(data)
        return GraphInfo(path=out_path, sha256=hashlib.sha256(data).hexdigest(), size=len(data))

    return export


def _adq_plan_fn(data, cfg, budget, pc):
    from edge_sdk.modelspec import TrainRecipe
    from edge_sdk.server.adq.family import plan

    return lambda digest: plan(data, cfg, budget, pc.with_graph(digest), TrainRecipe(steps=1))


def test_plan_with_graph_counts_real_digest(tmp_path):
    """A graph whose size has another digit count than the placeholder: re-planned, then written exactly."""
    from edge_sdk.payload import read_payload
    from edge_sdk.server.adq.family import QuantizeConfig, build
    from edge_sdk.server.budget import PLACEHOLDER_SIZE, plan_with_graph

    data = _plan_data()
    cfg = QuantizeConfig(method="uniform")
    pc = PayloadCost(num_classes=data.num_classes, task=data.task, provenance={"t": 1})
    budget = Budget.parse("8x").resolve(data.X_train.size * 4)
    calls: list = []
    size = 123_456  # 6 digits vs the 4-digit placeholder: 2 header bytes more
    assert len(str(size)) != len(str(PLACEHOLDER_SIZE))
    gp = plan_with_graph(_adq_plan_fn(data, cfg, budget, pc), _fake_exporter(lambda w: size, calls),
                         tmp_path / "graph.onnx")
    assert gp.rounds == 2 and len(calls) == 1 and gp.graph.size == size
    assert (tmp_path / "graph.onnx").stat().st_size == size and not list(tmp_path.glob(".graph.onnx.*"))
    assert [r["planned_with_size"] for r in gp.log] == [PLACEHOLDER_SIZE, size]
    cost = pc.with_graph(gp.graph.digest())
    assert gp.plan.nbytes == cost.size(gp.plan.layouts) <= budget
    cs = build(data, cfg, gp.plan)
    info = write_compact(tmp_path / "p.epl", cs, cost, budget_bytes=budget, planned_bytes=gp.plan.nbytes)
    assert info.size == gp.plan.nbytes == (tmp_path / "p.epl").stat().st_size <= budget
    assert read_payload(tmp_path / "p.epl").graph == gp.graph.digest()
    assert pc.size(gp.plan.layouts) < info.size  # the digest is really counted: without graph it is smaller


def test_plan_with_graph_oscillation_is_a_typed_error(tmp_path):
    """Budget on the edge: layout A's graph is so large that A no longer fits, layout B's graph is small
    enough that A fits again -> no fixed point -> ConfigError naming the way out; no file left behind."""
    from edge_sdk.server.adq.family import QuantizeConfig, width_cost
    from edge_sdk.server.budget import plan_with_graph
    from edge_sdk.server.onnx_export.export import GraphInfo

    data = _plan_data()
    n = data.X_train.shape[0]
    cfg = QuantizeConfig(method="uniform")
    pc = PayloadCost(num_classes=data.num_classes, task=data.task, provenance={"t": 1})
    small = width_cost(data, cfg, pc.with_graph({"sha256": "0" * 64, "size": 1}))
    budget = small.total([(4, n)])  # all samples at 4 bits fit exactly with a 1-digit graph size
    calls: list = []

    big = (1 << 31) - 1  # MAX_GRAPH_BYTES: 10 digits, 9 header bytes more than a 1-byte graph

    def exporter(lays, out_path):  # size `big` for layout (4,), 1 B otherwise
        widths = tuple(int(g.bits) for g in lays)
        calls.append(widths)
        out_path.write_bytes(b"x")
        return GraphInfo(path=out_path, sha256=f"{len(calls):064x}", size=big if widths == (4,) else 1)

    with pytest.raises(ConfigError, match="did not settle"):
        plan_with_graph(_adq_plan_fn(data, cfg, budget, pc), exporter, tmp_path / "graph.onnx")
    assert sorted(set(calls)) == [(3,), (4,)] and len(calls) == 2  # each layout exported once (cached)
    assert not list(tmp_path.iterdir())


def test_unsupported_model_plans_without_graph(tmp_path):
    """A convnet has no exportable training step: GraphExportError inside the planner; the pipeline then warns,
    plans without graph and says why in the report; no file is left behind."""
    from edge_sdk.modelspec import ModelSpec, TrainRecipe
    from edge_sdk.server.adq.family import QuantizeConfig
    from edge_sdk.server.budget import GraphExportError, plan_with_graph
    from edge_sdk.server.datasets import TaskData
    from edge_sdk.server.pipeline import RunConfig, export_graph_fn, run
    from edge_sdk.server.train_eval import EvalConfig

    rng = np.random.default_rng(0)
    spec = ModelSpec(kind="convnet", input_dim=16, num_classes=4, in_shape=(1, 4, 4), width=4, depth=1)
    y = np.arange(80) % 4
    data = TaskData("img", rng.standard_normal((80, 16)).astype(np.float32), y,
                    rng.standard_normal((20, 16)).astype(np.float32), y[:20], 4, spec,
                    {"kind": "image", "model": spec.to_dict()})
    cfg = QuantizeConfig(method="uniform")
    pc = PayloadCost(num_classes=4, task=data.task, provenance={"t": 1})
    with pytest.raises(GraphExportError, match="mlp"):
        plan_with_graph(_adq_plan_fn(data, cfg, 2000, pc), export_graph_fn(data, TrainRecipe()), tmp_path / "g" / "graph.onnx")
    assert not list((tmp_path / "g").iterdir())
    with pytest.warns(UserWarning, match="graph export not supported"):
        rep = run(data, RunConfig(cfg, Budget.parse("4x"), EvalConfig(TrainRecipe(steps=2), seeds=(0,))),
                  tmp_path / "run").report
    assert rep["extra"]["graph"] is None and "mlp" in rep["extra"]["graph_note"]
    assert rep["eval"]["config"]["runtime"] == "torch" and not (tmp_path / "run" / "graph.onnx").exists()
