"""The architecture's layering rules, enforced.

* ``import edge_sdk`` / ``edge_sdk.device`` / ``edge_sdk.fleet`` never loads torch (subprocess, fresh interpreter);
* no module in the core (edge_sdk/), the device (device/) or the fleet simulator (fleet/) imports torch or
  edge_sdk.server at module level or anywhere (AST scan; the CLI may import edge_sdk.server *inside* server
  command functions); the fleet simulator sits above the device runtime: it imports core and device;
* the release server (serve/, ``edge_sdk.serve``) imports the core and its own extra (starlette, uvicorn, anyio)
  only: never torch, ``edge_sdk.server`` or ``edge_sdk.device``; the core and the device never import it;
* every package folder is listed in pyproject.toml (the mapped folders are invisible to setuptools' find).
"""

from __future__ import annotations

import ast
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _imports(path: Path) -> list[tuple[str, bool]]:
    """(module imported, is_top_level) for every import statement in ``path``."""
    tree = ast.parse(path.read_text(), filename=str(path))
    top_level = {id(n) for n in tree.body}
    # imports inside `if TYPE_CHECKING:` at top level count as not executed
    out = []
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        for n in names:
            out.append((n, id(node) in top_level))
    return out


def _py_files(folder: str) -> list[Path]:
    return sorted((ROOT / folder).rglob("*.py"))


@pytest.mark.parametrize("module", ["edge_sdk", "edge_sdk.device", "edge_sdk.payload", "edge_sdk.beam", "edge_sdk.release",
                                    "edge_sdk.cli.main", "edge_sdk.cli.store_cmd", "edge_sdk.fleet"])
def test_import_does_not_load_torch(module: str) -> None:
    code = f"import sys, {module}; sys.exit(3 if 'torch' in sys.modules else 0)"
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, f"importing {module} loaded torch (rc={res.returncode}): {res.stderr[-2000:]}"


def test_device_modules_import_without_torch() -> None:
    """Import every device module in one fresh interpreter and check torch stayed out."""
    mods = [
        "edge_sdk.device." + p.relative_to(ROOT / "device").with_suffix("").as_posix().replace("/", ".")
        for p in _py_files("device")
        if p.name != "__init__.py"
    ]
    code = "import importlib, sys\n" + "".join(f"importlib.import_module({m!r})\n" for m in mods)
    code += "sys.exit(3 if 'torch' in sys.modules else 0)\n"
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=180)
    assert res.returncode == 0, f"device modules loaded torch or failed: {res.stderr[-2000:]}"


def test_fleet_modules_import_without_torch_or_server() -> None:
    """Every fleet module (the ray backend too) in one fresh interpreter: no torch, no edge_sdk.server."""
    mods = [
        "edge_sdk.fleet." + p.relative_to(ROOT / "fleet").with_suffix("").as_posix().replace("/", ".")
        for p in _py_files("fleet")
        if p.name != "__init__.py"
    ] + ["edge_sdk.cli.fleet_cmd"]
    code = "import importlib, sys\n" + "".join(f"importlib.import_module({m!r})\n" for m in mods)
    code += "bad = [m for m in sys.modules if m.split('.')[0] == 'torch' or m.startswith('edge_sdk.server')]\n"
    code += "sys.exit(3 if bad else 0)\n"
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=180)
    assert res.returncode == 0, f"fleet modules loaded torch/server or failed: {res.stderr[-2000:]}"


def test_fleet_sits_above_core_and_device() -> None:
    """fleet/ imports the core and the device runtime (it trains with the device's Trainer), never the server."""
    mods = {mod for path in _py_files("fleet") for mod, _ in _imports(path)}
    assert any(m.startswith("edge_sdk.device") for m in mods)
    assert any(m.startswith("edge_sdk.") and m.split(".")[1] not in ("device", "fleet", "server") for m in mods)
    assert not any(m.startswith("edge_sdk.server") for m in mods)
    # and nothing below it imports the fleet
    for folder in ("edge_sdk", "device", "server"):
        for path in _py_files(folder):
            rel = path.relative_to(ROOT).as_posix()
            if rel == "edge_sdk/cli/fleet_cmd.py":
                continue
            assert not any(m.startswith("edge_sdk.fleet") for m, _ in _imports(path)), f"{rel} imports the fleet"


def test_core_and_device_never_import_torch_or_server() -> None:
    bad = []
    for folder in ("edge_sdk", "device", "fleet"):
        for path in _py_files(folder):
            rel = path.relative_to(ROOT).as_posix()
            for mod, top in _imports(path):
                root = mod.split(".")[0]
                if root in ("torch", "torchvision", "sionna"):
                    bad.append(f"{rel}: imports {mod}")
                if mod.startswith("edge_sdk.server"):
                    # the CLI dispatches to the server lazily, inside command bodies only
                    if folder in ("device", "fleet") or top or not rel.startswith("edge_sdk/cli/"):
                        bad.append(f"{rel}: imports {mod}")
    assert not bad, "layering violations:\n" + "\n".join(bad)


def test_serve_imports_core_only() -> None:
    """serve/ needs no torch and no device runtime; the device (and the core) never import the server."""
    bad = []
    allowed_third_party = {"starlette", "uvicorn", "anyio"}
    for path in _py_files("serve"):
        rel = path.relative_to(ROOT).as_posix()
        for mod, _top in _imports(path):
            root = mod.split(".")[0]
            if root in ("torch", "torchvision", "sionna", "onnxruntime", "onnx", "numpy", "h5py"):
                bad.append(f"{rel}: imports {mod}")
            if mod.startswith(("edge_sdk.server", "edge_sdk.device")):
                bad.append(f"{rel}: imports {mod}")
            if root not in allowed_third_party and root != "edge_sdk" and root not in sys.stdlib_module_names:
                bad.append(f"{rel}: imports third-party {mod} (the serve extra is starlette + uvicorn)")
    for folder in ("edge_sdk", "device"):
        for path in _py_files(folder):
            rel = path.relative_to(ROOT).as_posix()
            for mod, top in _imports(path):
                if mod.startswith("edge_sdk.serve") and (folder == "device" or top or not rel.startswith("edge_sdk/cli/")):
                    bad.append(f"{rel}: imports {mod}")
    assert not bad, "layering violations:\n" + "\n".join(bad)


def test_serve_app_imports_without_torch_or_device() -> None:
    code = ("import sys, edge_sdk.serve.app, edge_sdk.serve.server\n"
            "bad = [m for m in ('torch', 'onnxruntime', 'edge_sdk.device', 'edge_sdk.server') if m in sys.modules]\n"
            "sys.exit(3 if bad else 0)")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, f"edge_sdk.serve loaded torch/device/server: {res.stderr[-2000:]}"


def test_every_package_folder_is_listed_in_pyproject() -> None:
    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(cfg["packages"])
    mapping = cfg["package-dir"]
    found = set()
    for pkg, folder in mapping.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT / folder)
            found.add(pkg if rel == Path(".") else pkg + "." + ".".join(rel.parts))
    assert found - listed == set(), f"add these packages to [tool.setuptools] packages: {sorted(found - listed)}"
    assert listed - found == set(), f"listed packages without an __init__.py: {sorted(listed - found)}"


def test_no_top_level_server_or_device_package() -> None:
    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert all(p == "edge_sdk" or p.startswith("edge_sdk.") for p in cfg["packages"])
