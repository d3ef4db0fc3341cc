"""(e) torch intra-op threads on the 2-core machine: one evaluation-sized training run (the server's
train_eval loop shape: MLP 8-128-128-32, batch 128, 2000 Adam steps) and one MTT-style unrolled step, with
torch threads 1 and 2, on a quiet machine and beside a deliberate competing process (a numpy busy loop on
one core, and a torch process using 2 threads). Run under `cpujob -n 2` so that nobody else competes."""
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, str(__import__("pathlib").Path(__file__).parent))


def bench(threads: int) -> dict:
    import torch
    torch.set_num_threads(threads)
    from common import Recipe, load, train
    b = load()
    t = time.perf_counter()
    train(b.spec, b.X, b.y, 0, Recipe("adam", 3e-3, 2000, schedule="cosine"))
    t_train = time.perf_counter() - t
    # a big-batch forward/backward (distillation-like: 2048 rows)
    import torch.nn.functional as F
    from common import _params, mlp
    p = _params(b.spec, 0)
    X = torch.from_numpy(b.X[:2048])
    y = torch.from_numpy(b.y[:2048])
    t = time.perf_counter()
    for _ in range(200):
        torch.autograd.grad(F.cross_entropy(mlp(p, X), y), p)
    t_big = time.perf_counter() - t
    return {"threads": threads, "train_2000_steps_s": t_train, "batch2048_x200_s": t_big}


COMPETITORS = {
    "none": None,
    "numpy_1core": "import numpy as np\nwhile True: np.sort(np.random.rand(200000))",
    "torch_2threads": "import torch\ntorch.set_num_threads(2)\na=torch.randn(512,512)\nwhile True: a@a",
}

if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "child":
        print(json.dumps(bench(int(sys.argv[2]))))
        sys.exit(0)
    rows = []
    for comp, code in COMPETITORS.items():
        for threads in (1, 2):
            proc = None
            if code:
                env = dict(os.environ, OMP_NUM_THREADS="2" if "torch" in comp else "1")
                proc = subprocess.Popen([sys.executable, "-c", code], env=env)
                time.sleep(1.0)
            env = dict(os.environ, OMP_NUM_THREADS=str(threads))
            out = subprocess.run([sys.executable, __file__, "child", str(threads)], env=env, capture_output=True, text=True)
            if proc:
                proc.kill()
                proc.wait()
            r = json.loads(out.stdout.strip().splitlines()[-1])
            r["competitor"] = comp
            rows.append(r)
            print(r, flush=True)
    from common import save
    save("e_threads", {"rows": rows, "cpus": os.cpu_count()})
