"""What the server side offers, by name — torch-free, so ``edge-sdk --help`` lists the choices on a device too.

The truth is the server's registries (``edge_sdk.server.distill.METHODS``, ``edge_sdk.server.adq.METHODS``,
``edge_sdk.server.torch_quant.QUANTIZERS``, ``edge_sdk.server.adq.pruning.PRUNERS``,
``edge_sdk.server.adq.allocation.ALLOCATORS``); this module repeats their names for the CLI and the generated
docs, and ``tests/server/test_catalog.py`` fails when the two disagree (add a plug-in: register it, then add its
name here). The distillation registries also take from here where each plug-in lives, and import it only when a
run uses it (``edge_sdk.registry.Registry(modules=...)``).
"""

from __future__ import annotations

#: distillation hosts (each registers ``<host>``, ``quadd-<host>`` and ``ptq-<host>``), module
#: ``edge_sdk.server.distill.<host>``
DISTILL_HOSTS = ("dc", "dm", "kip", "mtt")
#: distillation baselines -> their module in ``edge_sdk.server.distill``
DISTILL_BASELINES = {"full": "baselines", "random": "baselines", "herding": "coreset_methods",
                     "kmeans": "coreset_methods", "kmedoids": "coreset_methods"}
#: ``edge-sdk distill --method`` (registry names) and the aliases the CLI accepts
DISTILL_METHODS = ("dc", "dm", "full", "herding", "kip", "kmeans", "kmedoids", "mtt", "ptq-dc", "ptq-dm", "ptq-kip",
                   "ptq-mtt", "quadd-dc", "quadd-dm", "quadd-kip", "quadd-mtt", "random")
DISTILL_ALIASES = {"quadd": "quadd-mtt"}
#: ``edge-sdk distill --method auto``: a search over the methods above (``edge_sdk.server.distill.auto``)
DISTILL_SEARCH = ("auto",)
#: ``edge-sdk quantize --method``
QUANTIZE_METHODS = ("adq", "fixed", "full", "prune", "uniform")
#: differentiable quantizers of QuADD (``--quantizer``), plus the raw storage kinds
QUANTIZERS = ("apot", "codebook", "uniform")
#: registered quantizers whose kinds only payload v2 stores (affine min/max grids, issue #11); ``edge-sdk distill``
#: offers them with ``--payload-format 2``
V2_QUANTIZERS = ("affine_feature", "affine_sample", "affine_set")
RAW_KINDS = ("float16", "float32")
#: ``edge-sdk distill --labels``: the rows' measured labels, or a teacher's classes (``edge_sdk.server.teacher``)
LABEL_SOURCES = ("data", "teacher")
#: coreset pruning (``quantize --prune``) and ADQ bit allocation (``quantize --allocation``)
PRUNERS = ("ccs", "el2n", "random")
ALLOCATIONS = ("cover", "k", "threshold", "two")
#: ADQ per-sample kinds (``quantize --kind``; auto = affine for payload v2, symmetric for v1) and the v2 encodings
#: of the affine kind's lo/hi (``quantize --param-encoding``)
SAMPLE_KINDS = ("auto", "symmetric", "affine")
PARAM_ENCODINGS = ("compact", "f2", "f4")
