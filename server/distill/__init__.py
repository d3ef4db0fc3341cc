"""edge_sdk.server.distill."""
