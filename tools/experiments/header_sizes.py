"""Fixed overhead of a signed 180x beam payload under payload v1 and candidate lean encodings (no training)."""
import json
import sys
import zlib

sys.path.insert(0, str(__import__("pathlib").Path(__file__).parent))
import numpy as np
from common import save

from edge_sdk.payload.format import canonical_json
from edge_sdk.payload.writer import SampleGroup, payload_size

task = json.load(open("/work/scratch/acc/task.json"))
task["train"] = {"optimizer": "adam", "lr": 0.003, "momentum": 0.9, "weight_decay": 0.0, "batch_size": 128,
                 "schedule": "cosine", "steps": 3000}
prov = {"tool": "edge-sdk distill", "version": "0.1.0", "method": "quadd-mtt", "dataset": "beam", "seed": 0}
n, d, bits = 419, 8, 4
rng = np.random.default_rng(0)
g = SampleGroup(name="samples", kind="codebook", bits=bits, data=rng.integers(0, 16, (n, d)).astype(np.uint8),
                params={"levels": np.linspace(-6, 0, 16).astype(np.float32)}, labels=rng.integers(0, 32, n))
graph = ("ab" * 32, 7464)
import inspect  # noqa: E402

print(inspect.signature(payload_size))
gd = {"sha256": graph[0], "size": graph[1]}
codes_b = n * ((d * bits + 7) // 8)
labels_b = (n * 5 + 7) // 8
params_b = 16 * 4
data = codes_b + labels_b + params_b
full = payload_size([g], 32, task, prov, gd, signed=True)
notask = payload_size([g], 32, {}, {}, gd, signed=True)
tj = canonical_json(task)
res = {
    "v1_signed_total": full, "v1_data_bytes": data, "v1_fixed_overhead": full - data,
    "v1_overhead_without_task_and_provenance": notask - data,
    "task_json_bytes": len(tj), "task_json_zlib9": len(zlib.compress(tj, 9)),
    "provenance_json_bytes": len(canonical_json(prov)),
    "trailer_signed_v1": 32 + 32 + 64,
}
# candidate v2: prefix 16 + binary header (task digest 32, classes 2, group count 1, per group: role/kind/bits/
# param dtype/label mode 5 B + n u32 + d u16) + recipe binary (optimizer u8, schedule u8, batch u16, steps u32,
# lr f32, weight decay f32, momentum/beta1 f32, beta2 f32, eps f32 = 28 B) + signed trailer (key id 8 + sig 64)
hdr_v2 = 32 + 2 + 1 + (5 + 4 + 2) + 28
res["v2_candidate"] = {"prefix": 16, "header": hdr_v2, "trailer_signed": 8 + 64,
                       "fixed_overhead": 16 + hdr_v2 + 72,
                       "note": "task spec + model + graph digest in a digest-named task blob; content digest dropped "
                               "when signed (the signature covers SHA-256 of the content)"}
res["v2_inline_zlib_task"] = 16 + (hdr_v2 - 32) + len(zlib.compress(tj, 9)) + 32 + 72
print(json.dumps(res, indent=1))
save("header_sizes", res)
