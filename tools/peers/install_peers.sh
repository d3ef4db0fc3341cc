#!/usr/bin/env bash
# Create one venv per on-device training runtime under .venv-peers/<peer> (gitignored), so the product's own
# dependencies never change. Used by `make bench-peers` (tools/bench_peers.py). A venv is reused while its
# requirement line is unchanged (stamp file). A peer whose install fails is reported (pip's error in
# .venv-peers/<peer>.install.log) and skipped; the benchmark then marks it "not installed".
#   edge-sdk      : this repository's base install (`pip install .`, no extras) = the device venv
#   torch         : eager PyTorch, CPU build
#   ort-training  : onnxruntime-training 1.19.2 (last release with training; needs onnx<=1.16; imports torch)
#   litert        : ai-edge-litert runtime only (what a device would install)
#   litert-build  : tensorflow-cpu, used once to convert the hand-written-backward model to .tflite
#   executorch    : executorch with the torch it pairs with (1.5.1 <-> torch 2.13.0)
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
PYTHON="${PYTHON:-python3}"
DEST="${PEERS_DIR:-$ROOT/.venv-peers}"
TORCH="torch==2.13.0"
declare -A REQS=(
  [edge-sdk]="$ROOT"
  [torch]="$TORCH numpy psutil"
  [ort-training]="onnxruntime-training==1.19.2 onnx==1.16.2 $TORCH numpy psutil"
  [litert]="ai-edge-litert==2.3.0 numpy psutil"
  [litert-build]="tensorflow-cpu==2.21.0 numpy"
  [executorch]="executorch==1.5.1 $TORCH numpy psutil"
)
ORDER=(edge-sdk torch ort-training litert litert-build executorch)
only=("$@")
mkdir -p "$DEST"
status=0
for peer in "${ORDER[@]}"; do
  if [ ${#only[@]} -gt 0 ] && [[ ! " ${only[*]} " =~ " $peer " ]]; then continue; fi
  venv="$DEST/$peer"; reqs="${REQS[$peer]}"
  key="$(echo "$reqs" | cksum | cut -d' ' -f1)"
  if [ "$peer" = edge-sdk ]; then key="$key-$(cat "$ROOT/pyproject.toml" | cksum | cut -d' ' -f1)"; fi
  if [ -f "$venv/.ok-$key" ]; then
    if [ "$peer" = edge-sdk ]; then  # current sources, dependencies unchanged
      "$venv/bin/python" -m pip install -q --disable-pip-version-check --force-reinstall --no-deps "$ROOT" \
        >>"$DEST/$peer.install.log" 2>&1
    fi
    echo "peer $peer: ready ($venv)"; continue
  fi
  echo "peer $peer: installing $reqs"
  rm -rf "$venv"
  log="$DEST/$peer.install.log"
  if "$PYTHON" -m venv "$venv" >"$log" 2>&1 \
     && "$venv/bin/python" -m pip install -q --disable-pip-version-check $reqs >>"$log" 2>&1; then
    touch "$venv/.ok-$key"; echo "peer $peer: installed"
  else
    echo "peer $peer: INSTALL FAILED (see $log):"; grep -E "ERROR|error:" "$log" | tail -5
    status=1
  fi
done
exit 0  # failures are reported by the benchmark, which runs the peers that installed
