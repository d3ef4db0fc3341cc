"""Reference data: the content digest recorded in ``datasets/3gpp/reference/SHA256SUMS``, and its check.

numpy + h5py only (no torch), so a device can check a dataset too: ``edge-sdk data verify [DIR]``
(:func:`verify_dir`).

HDF5 files written by :class:`edge_sdk.beam.h5writer.BeamH5Writer` carry a ``created`` timestamp attribute, so
their bytes differ between two otherwise identical runs. The recorded digest is therefore over the *decoded*
arrays: for every stored field in schema order, ``name``, dtype string and shape (UTF-8, newline separated)
followed by the C-order array bytes, plus the ``seed`` and ``preset`` attributes. Two files with the same digest
hold identical samples generated from the identical preset and seed.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge_sdk.atomic import atomic_write_text
from edge_sdk.beam.dataset import fields_for
from edge_sdk.errors import DatasetError

SUMS_NAME = "SHA256SUMS"
#: the shipped reference data in the source checkout (``edge-sdk data verify`` with no folder)
SHIPPED_DIR = Path(__file__).resolve().parents[2] / "datasets" / "3gpp" / "reference"
SUMS_HEADER = (
    "# SHA-256 of the decoded arrays + seed/preset attrs (edge_sdk.beam.reference.array_digest),\n"
    "# not of the file bytes (HDF5 attrs hold a creation timestamp). Regenerate: .venv/bin/python tools/make_reference_data.py\n"
)


def array_digest(path: str | Path, *, isolate: bool = False) -> str:
    """Hex SHA-256 of the decoded content of a beam HDF5 file (see module docstring); ``isolate``: read it in a
    child process first (``edge_sdk.beam.h5reader.probe_beam_h5``), for a file someone else handed over."""
    from edge_sdk.beam.h5reader import read_beam_h5

    ds = read_beam_h5(path, isolate=isolate)
    h = hashlib.sha256()
    for name in fields_for(ds.case):
        arr = np.ascontiguousarray(getattr(ds, name))
        h.update(f"{name}\n{arr.dtype.str}\n{arr.shape}\n".encode())
        h.update(arr.tobytes())
    h.update(f"seed={int(ds.attrs['seed'])}\npreset={ds.attrs['preset']}\n".encode())
    return h.hexdigest()


MAX_SUMS_BYTES = 1 << 20


def read_sums(path: str | Path) -> dict[str, str]:
    """``{file name: hex digest}`` from a SHA256SUMS file (``<hex>  <name>`` lines, ``#`` comments). Names are
    plain file names in the same folder; anything else (a malformed line, a path, a bad digest) is a
    :class:`~edge_sdk.errors.DatasetError` naming the line."""
    p = Path(path)
    if p.stat().st_size > MAX_SUMS_BYTES:
        raise DatasetError(f"{p} is larger than {MAX_SUMS_BYTES} bytes; not a SHA256SUMS file")
    out: dict[str, str] = {}
    for i, line in enumerate(p.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split(maxsplit=1)
        digest, name = (parts[0].lower(), parts[1].strip()) if len(parts) == 2 else ("", "")
        if (len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest) or not name
                or "/" in name or "\\" in name or name.startswith(".")):
            raise DatasetError(f"{p}:{i}: expected '<64 hex digits>  <file name>', got {line[:120]!r}")
        out[name] = digest
    return out


def write_sums(path: str | Path, sums: dict[str, str]) -> None:
    """Write ``sums`` atomically in the format of :func:`read_sums`."""
    atomic_write_text(path, SUMS_HEADER + "".join(f"{d}  {n}\n" for n, d in sorted(sums.items())))


def verify_dir(folder: str | Path) -> dict[str, bool]:
    """``{file name: digest matches}`` for every file that ``folder/SHA256SUMS`` lists. A listed file that is
    missing, or a folder without SHA256SUMS, is a :class:`~edge_sdk.errors.DatasetError`."""
    d = Path(folder)
    sums_path = d / SUMS_NAME
    if not sums_path.is_file():
        raise DatasetError(f"{sums_path} does not exist; give a folder that holds {SUMS_NAME} and the files it lists")
    sums = read_sums(sums_path)
    if not sums:
        raise DatasetError(f"{sums_path} lists no files")
    missing = sorted(n for n in sums if not (d / n).is_file())
    if missing:
        raise DatasetError(f"{d} lacks {missing}, listed in {SUMS_NAME}")
    return {name: array_digest(d / name, isolate=True) == digest for name, digest in sums.items()}


# ------------------------------------------------------------------------------------------ regeneration check
#
# Regenerating the reference data reproduces SHA256SUMS bit for bit only on the same CPU code paths: the
# channel's complex GEMM (MKL) and ATen's SIMD kernels (atan2, pow, |z|^2) are chosen by the CPU, and a last-bit
# float32 difference flips the float16 rounding of an RSRP entry that lies near a rounding midpoint (one float16
# step: 0.0625 dB in [-128, -64) dBm, 0.125 dB below -128 dBm), or a float32 position by one ULP. Labels and
# LOS/indoor states are decided far from any such boundary. A regeneration is therefore judged by two verdicts:
# *identical* (same array digest) and *equivalent* (same discrete fields, float fields within rounding).

#: fields that must be equal entry for entry in an equivalent regeneration
EXACT_FIELDS = ("label", "los", "indoor", "cell", "traj_id", "t_index")
#: float fields: the largest difference of one entry, in units of its dtype's spacing at that value (ULPs)
MAX_ULPS = {"rsrp": 1.0, "d2d": 4.0, "ue_pos": 4.0}
#: float fields: the largest share of entries that may differ at all
MAX_DIFF_SHARE = 0.01
#: root attributes that must be equal (what was generated; timestamps and library versions may differ)
SAME_ATTRS = ("seed", "preset", "generator_version", "case", "n_target")


@dataclass(frozen=True)
class FieldDiff:
    """How one field of a regenerated file differs from the reference."""

    name: str
    entries: int
    differing: int
    max_abs: float  # largest |candidate - reference| (in the field's unit)
    max_ulps: float  # largest difference in units of the dtype's spacing at the larger value

    @property
    def share(self) -> float:
        return self.differing / self.entries if self.entries else 0.0


@dataclass(frozen=True)
class Comparison:
    """Result of :func:`compare_datasets`: ``identical`` (same :func:`array_digest`) and ``equivalent``."""

    identical: bool
    equivalent: bool
    fields: tuple[FieldDiff, ...]
    problems: tuple[str, ...]

    def summary(self) -> str:
        """One line: the verdict and, when not identical, what differs by how much."""
        if self.identical:
            return "identical (same array digest)"
        diffs = ", ".join(f"{f.name}: {f.differing} of {f.entries} entries ({100 * f.share:.4f}%) differ by "
                          f"<= {f.max_abs:.3g} ({f.max_ulps:.0f} ULP)" for f in self.fields if f.differing)
        if self.equivalent:
            return f"equivalent within float rounding, not bit-identical: {diffs or 'attributes only'}"
        more = f"; ... ({len(self.problems) - 4} more)" if len(self.problems) > 4 else ""
        return "DIFFERENT: " + "; ".join(self.problems[:4]) + more


def _ulps(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    big = np.maximum(np.abs(a), np.abs(b))
    step = np.spacing(big.astype(a.dtype)).astype(np.float64)
    return np.abs(a.astype(np.float64) - b.astype(np.float64)) / np.where(step > 0, step, np.inf)


def _untied_label_changes(cand: np.ndarray, ref: np.ndarray, ref_rsrp: np.ndarray) -> int:
    """Rows whose label changed although, in the reference, the new label's beam is not within
    ``MAX_ULPS["rsrp"]`` of the best beam (best Rx each). A changed label is rounding only in a near-tie: about
    9% of the shipped drops have their two best beams within one float16 step."""
    rows = np.nonzero(cand != ref)[0]
    if len(rows) == 0:
        return 0
    best_rx = ref_rsrp[rows].max(axis=2)  # [rows, n_tx]
    at_ref, at_cand = best_rx[np.arange(len(rows)), ref[rows]], best_rx[np.arange(len(rows)), cand[rows]]
    return int(np.count_nonzero(_ulps(at_ref, at_cand) > MAX_ULPS["rsrp"]))


def compare_datasets(candidate: str | Path, reference: str | Path) -> Comparison:
    """Compare a regenerated beam HDF5 file with the reference file it should reproduce.

    *Equivalent* means: the same preset, seed, case and row count; :data:`EXACT_FIELDS` equal entry for entry
    (a label may change only where the reference's two best beams are tied within one float16 step);
    every float entry within :data:`MAX_ULPS` of the reference and at most :data:`MAX_DIFF_SHARE` of a float
    field's entries different. That is the most a different CPU code path changes (see the comment above); a
    changed generator, preset or seed changes labels and positions far beyond it.
    """
    from edge_sdk.beam.h5reader import read_beam_h5

    cand, ref = read_beam_h5(candidate), read_beam_h5(reference)
    problems: list[str] = []
    for k in SAME_ATTRS:
        if cand.attrs.get(k) != ref.attrs.get(k):
            problems.append(f"attribute {k} differs ({cand.attrs.get(k)!r} vs {ref.attrs.get(k)!r})")
    diffs: list[FieldDiff] = []
    for name in fields_for(ref.case):
        a, b = getattr(cand, name), getattr(ref, name)
        if a is None or b is None or a.shape != b.shape or a.dtype != b.dtype:
            problems.append(f"{name}: shape/dtype {getattr(a, 'shape', None)} {getattr(a, 'dtype', None)} vs "
                            f"{getattr(b, 'shape', None)} {getattr(b, 'dtype', None)}")
            continue
        if a.dtype.kind == "f":
            ulps = _ulps(a, b)
            d = FieldDiff(name, a.size, int(np.count_nonzero(ulps)),
                          float(np.max(np.abs(a.astype(np.float64) - b.astype(np.float64)), initial=0.0)),
                          float(np.max(ulps, initial=0.0)))
            limit = MAX_ULPS.get(name, 0.0)
            if d.max_ulps > limit:
                problems.append(f"{name}: an entry differs by {d.max_ulps:.1f} ULP (> {limit:g})")
            if d.share > MAX_DIFF_SHARE:
                problems.append(f"{name}: {100 * d.share:.2f}% of entries differ (> {100 * MAX_DIFF_SHARE:g}%)")
        else:
            d = FieldDiff(name, a.size, int(np.count_nonzero(a != b)), float(np.count_nonzero(a != b) > 0), 0.0)
            if name == "label" and d.differing:
                untied = _untied_label_changes(a, b, ref.rsrp)
                if untied:
                    problems.append(f"label: {untied} of {d.entries} labels differ where the reference's best "
                                    "beams are not tied within rounding")
            elif d.differing and name in EXACT_FIELDS:
                problems.append(f"{name}: {d.differing} of {d.entries} entries differ (must be equal)")
        diffs.append(d)
    identical = not problems and array_digest(candidate) == array_digest(reference)
    return Comparison(identical=identical, equivalent=not problems, fields=tuple(diffs), problems=tuple(problems))


# ------------------------------------------------------------------------------------------ the shipped files

#: how the shipped reference data is made: file -> (rows, seed); preset and chunk size below; CPU, one thread
REFERENCE_FILES = {"train.h5": (12_000, 1), "test.h5": (4_000, 2)}
REFERENCE_PRESET = "uma-fr2-case1"
REFERENCE_BATCH = 1000


def shipped_reference_dir() -> Path:
    """``datasets/3gpp/reference`` of the source checkout (the shipped files and their SHA256SUMS)."""
    d = SHIPPED_DIR
    if not (d / SUMS_NAME).exists():
        from edge_sdk.errors import ConfigError

        raise ConfigError(f"the shipped reference data is not at {d} (it lives in the source checkout's "
                          "datasets/3gpp/reference); run from a checkout")
    return d


@dataclass(frozen=True)
class FileCheck:
    """One file checked against the shipped SHA256SUMS (and, when its digest differs, against the shipped file)."""

    name: str
    expected: str
    actual: str | None  # None: the file is missing
    comparison: Comparison | None = None

    @property
    def identical(self) -> bool:
        return self.actual == self.expected

    @property
    def ok(self) -> bool:
        """Identical, or (for a regenerated copy) equivalent within float rounding."""
        return self.identical or (self.comparison is not None and self.comparison.equivalent)

    def line(self) -> str:
        if self.actual is None:
            return f"{self.name}: MISSING"
        if self.identical:
            return f"{self.name}: OK (identical to the shipped SHA256SUMS)"
        if self.comparison is None:
            return f"{self.name}: MISMATCH (array digest {self.actual}, SHA256SUMS says {self.expected})"
        verdict = "OK, " if self.comparison.equivalent else "MISMATCH, "
        return f"{self.name}: {verdict}{self.comparison.summary()}"


def check_reference(files_dir: str | Path | None = None, shipped_dir: str | Path | None = None) -> list[FileCheck]:
    """Check the reference files in ``files_dir`` (default: the shipped ones) against the SHIPPED SHA256SUMS,
    never against a SHA256SUMS that sits beside the checked files. The shipped files must match exactly; a
    regenerated copy elsewhere whose digest differs is compared with the shipped file (:func:`compare_datasets`)."""
    shipped = Path(shipped_dir) if shipped_dir is not None else shipped_reference_dir()
    files = Path(files_dir) if files_dir is not None else shipped
    is_shipped = files.resolve() == shipped.resolve()
    out = []
    for name, digest in read_sums(shipped / SUMS_NAME).items():
        f = files / name
        if not f.exists():
            out.append(FileCheck(name, digest, None))
            continue
        actual = array_digest(f)
        cmp = None
        if actual != digest and not is_shipped:
            cmp = compare_datasets(f, shipped / name)
        out.append(FileCheck(name, digest, actual, cmp))
    return out
