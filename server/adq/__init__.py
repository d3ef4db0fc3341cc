"""edge_sdk.server.adq."""
