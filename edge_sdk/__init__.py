"""edge-sdk core: the contract shared by the server and the device.

Layers (see docs/architecture.md):

* ``edge_sdk`` (this folder): payload format, bit packing, numpy codecs, beam features and KPIs, CLI.
  Imports numpy, h5py, cryptography (pyarrow only where Parquet is written) - never torch.
* ``edge_sdk.server`` (folder ``server/``): torch - data generation, distillation, quantization, export.
* ``edge_sdk.device`` (folder ``device/``): numpy + onnxruntime - verify, train, evaluate.
"""

from edge_sdk._version import __version__

__all__ = ["__version__"]
