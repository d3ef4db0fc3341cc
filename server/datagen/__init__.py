"""edge_sdk.server.datagen."""
