#!/usr/bin/env bash
# The device runtime must work with the base package alone: install `pip install .` (no extras, no torch) into
# fresh venvs and run tests/device there against the pre-exported graphs in tests/device/data/
# (regenerate them with `.venv/bin/python tools/make_device_fixtures.py`).
#   1. .venv-device      : newest onnxruntime the registry offers (whatever `pip install .` resolves)
#   2. .venv-device-min  : the oldest onnxruntime we claim, ORT_MIN (default 1.17.3) with numpy<2
# Skip (2) with EDGE_SDK_SKIP_ORT_MIN=1. Venvs are reused between runs (the package is reinstalled each time).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="${PYTHON:-python3}"
ORT_MIN="${ORT_MIN:-1.17.3}"
PIP_FLAGS=(-q --disable-pip-version-check)

run_in_venv() {  # $1 venv dir, rest: extra requirements
  local venv="$1"; shift
  if [ ! -x "$venv/bin/python" ]; then
    "$PYTHON" -m venv "$venv"
    "$venv/bin/python" -m pip install "${PIP_FLAGS[@]}" --upgrade pip
  fi
  # a reused venv keeps packages the base install no longer names (pyarrow moved to the extras): drop them first,
  # so the checks below see what `pip install .` brings
  "$venv/bin/python" -m pip uninstall "${PIP_FLAGS[@]}" -y pyarrow >/dev/null 2>&1 || true
  "$venv/bin/python" -m pip install "${PIP_FLAGS[@]}" "$ROOT" pytest hypothesis "$@"
  "$venv/bin/python" -m pip install "${PIP_FLAGS[@]}" --force-reinstall --no-deps "$ROOT"  # current sources
  if "$venv/bin/python" -c "import torch" 2>/dev/null; then
    echo "error: torch is importable in $venv; the base package must not pull it in" >&2; exit 1
  fi
  if "$venv/bin/python" -c "import pyarrow" 2>/dev/null; then
    echo "error: pyarrow is importable in $venv; it belongs to the server/fleet extras, never the device" >&2; exit 1
  fi
  local ortv
  ortv="$("$venv/bin/python" -c 'import onnxruntime; print(onnxruntime.__version__)')"
  echo "== tests/device in $venv (onnxruntime $ortv, no torch)"
  # run from outside the repo so that the installed package (not the source tree) is imported
  (cd "$(mktemp -d)" && "$venv/bin/python" -m pytest -q -p no:cacheprovider \
      --rootdir "$ROOT" -c "$ROOT/pyproject.toml" "$ROOT/tests/device")
}

run_in_venv "$ROOT/.venv-device"
if [ "${EDGE_SDK_SKIP_ORT_MIN:-0}" != "1" ]; then
  EDGE_SDK_ORT_MIN="$ORT_MIN" run_in_venv "$ROOT/.venv-device-min" "onnxruntime==$ORT_MIN" "numpy<2"
fi
echo "device-minimal: OK"
