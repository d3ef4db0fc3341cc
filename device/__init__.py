"""edge_sdk.device: the device runtime (numpy + onnxruntime only; never torch, never edge_sdk.server)."""
