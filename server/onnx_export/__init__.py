"""edge_sdk.server.onnx_export."""
