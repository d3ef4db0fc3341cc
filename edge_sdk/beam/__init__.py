"""3GPP beam-management data (numpy + h5py): HDF5 schema v1, task spec, KPIs. See docs/dataset-hdf5.md.

* :mod:`edge_sdk.beam.dataset` - ``BeamDataset`` and its checks
* :mod:`edge_sdk.beam.h5reader` - the schema constants and attribute rules (shared with the writer), the storage
  checks for untrusted files (``H5ReadOptions``), ``read_beam_h5``, ``open_beam_h5`` (validating reader)
* :mod:`edge_sdk.beam.h5writer` - ``BeamH5Writer`` (appendable, resumable), ``write_beam_h5``
* :mod:`edge_sdk.beam.taskspec` - ``BeamTaskSpec`` (Set B, Rx mode, normalisation, Case2 windows)
* :mod:`edge_sdk.beam.kpis` - ``beam_kpis`` and the non-AI baselines (TR 38.843)
* :mod:`edge_sdk.beam.stats` / :mod:`edge_sdk.beam.export` - ``data info`` statistics, Parquet export
* :mod:`edge_sdk.beam.synthetic` - toy data for tests only
"""
