"""Build the reference service's release artifact: ``refservice-<version>.tar.gz``.

Why an artifact at all: a deploy drill must ship *a build*, the same bytes to
every host, not whatever the work tree holds at the moment each host is
touched. The app role unpacks the tarball into an immutable
``releases/<version>/`` directory, so the tarball is the unit a canary compares.

Why deterministic (sorted entries, fixed mtimes and owners, no gzip timestamp,
no ``__pycache__``): building the same version twice from the same source gives
the same bytes, so a rebuild is a no-op and a *different* build under an
existing version number is detected and refused instead of silently replacing
what a host may already run.

Why release.json is generated here and stored last: it describes the build
(version and the faults a drill injects: error rate, latency,
misconfigurations) and the service reads it at start. Being the last member, it
also marks a complete extraction.
"""

from __future__ import annotations

import argparse
import gzip
import io
import json
import math
import os
import re
import sys
import tarfile
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

from drillbook.core.paths import LAB_SERVICE

__all__ = ["ARTIFACT_MEMBERS", "DEFAULT_SOURCE", "artifact_name", "build_release", "main"]

#: The reference service in this repository (lab/).
DEFAULT_SOURCE = LAB_SERVICE  # the checkout's lab/, or the wheel's packaged copy

#: What a release contains from the source tree (release.json is generated).
ARTIFACT_MEMBERS = ("alembic.ini", "migrations", "refservice", "requirements.txt")

# 2000-01-01T00:00:00Z: a fixed, plausible mtime (some tools warn about 1970).
_FIXED_MTIME = 946684800
_EXCLUDED_DIRS = frozenset({"__pycache__", ".mypy_cache", ".pytest_cache", ".ruff_cache"})
_EXCLUDED_SUFFIXES = (".pyc", ".pyo")
# A version becomes a file name and a directory name on every host.
_VERSION_RE = re.compile(r"^[0-9A-Za-z][0-9A-Za-z._+-]{0,63}$")
_MISCONFIGURE_RE = re.compile(r"^[a-z0-9][a-z0-9-]*$")


def artifact_name(version: str) -> str:
    """File name of the artifact of ``version`` (what the app role looks for)."""
    return f"refservice-{version}.tar.gz"


def build_release(
    version: str,
    out_dir: Path,
    *,
    error_rate: float = 0.0,
    latency_ms: int = 0,
    misconfigure: Sequence[str] = (),
    source: Path = DEFAULT_SOURCE,
    latency_share: float = 1.0,
) -> Path:
    """Write ``out_dir/refservice-<version>.tar.gz`` and return its path.

    Idempotent: when the artifact exists with the same bytes nothing is written.
    Raises ValueError for invalid arguments, an incomplete source, or an existing
    artifact of the same version with different content (a version is
    immutable once built: hosts may already run it).
    """
    _check_arguments(version, error_rate, latency_ms, misconfigure)
    if not (math.isfinite(latency_share) and 0.0 < latency_share <= 1.0):
        raise ValueError(f"latency_share must be in (0, 1], got {latency_share}")
    release: dict[str, object] = {
        "version": version,
        "error_rate": float(error_rate),
        "latency_ms": int(latency_ms),
        "misconfigure": sorted(set(misconfigure)),
    }
    if latency_share < 1.0:  # only then: artifacts built before the knob keep their bytes
        release["latency_share"] = float(latency_share)
    data = _archive_bytes(Path(source), release)
    out_dir = Path(out_dir)
    target = out_dir / artifact_name(version)
    if target.exists():
        if target.read_bytes() == data:
            return target
        raise ValueError(
            f"{target} already exists with different content: release {version} is immutable "
            "(hosts may run it); build a new version, or delete the file if no host uses it"
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    _write_atomically(target, data)
    return target


def _check_arguments(version: str, error_rate: float, latency_ms: int, misconfigure: Sequence[str]) -> None:
    if not _VERSION_RE.match(version):
        raise ValueError(
            f"invalid release version {version!r}: use letters, digits and . _ + - (e.g. 1.2.0), "
            "starting with a letter or digit"
        )
    if not (math.isfinite(error_rate) and 0.0 <= error_rate <= 1.0):
        raise ValueError(f"error_rate must be between 0 and 1, got {error_rate}")
    if latency_ms < 0:
        raise ValueError(f"latency_ms must be >= 0, got {latency_ms}")
    if isinstance(misconfigure, str):
        raise ValueError("misconfigure must be a sequence of names, not a single string")
    for name in misconfigure:
        if not _MISCONFIGURE_RE.match(name):
            raise ValueError(f"invalid misconfigure name {name!r}")


def _source_files(source: Path) -> Iterator[tuple[str, Path]]:
    """Yield (archive name, path) for every directory and file, sorted by name."""
    missing = [m for m in ARTIFACT_MEMBERS if not (source / m).exists()]
    if missing:
        raise ValueError(f"release source {source} lacks {', '.join(missing)}")
    entries: list[tuple[str, Path]] = []
    for member in ARTIFACT_MEMBERS:
        root = source / member
        entries.append((member, root))
        if not root.is_dir():
            continue
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames[:] = [d for d in dirnames if d not in _EXCLUDED_DIRS]
            base = Path(dirpath)
            for name in dirnames:
                entries.append(((base / name).relative_to(source).as_posix(), base / name))
            for name in filenames:
                if not name.endswith(_EXCLUDED_SUFFIXES):
                    entries.append(((base / name).relative_to(source).as_posix(), base / name))
    yield from sorted(entries)


def _tar_info(name: str, *, directory: bool, size: int = 0, executable: bool = False) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.mtime = _FIXED_MTIME
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    if directory:
        info.type = tarfile.DIRTYPE
        info.mode = 0o755
    else:
        info.size = size
        info.mode = 0o755 if executable else 0o644
    return info


def _archive_bytes(source: Path, release: dict[str, object]) -> bytes:
    """The complete .tar.gz as bytes (a release is small: well under a megabyte)."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for name, path in _source_files(source):
            if path.is_dir():
                tar.addfile(_tar_info(name, directory=True))
                continue
            content = path.read_bytes()
            info = _tar_info(name, directory=False, size=len(content), executable=os.access(path, os.X_OK))
            tar.addfile(info, io.BytesIO(content))
        manifest = (json.dumps(release, indent=2, sort_keys=True) + "\n").encode()
        tar.addfile(_tar_info("release.json", directory=False, size=len(manifest)), io.BytesIO(manifest))
    packed = io.BytesIO()
    # mtime=0 and no file name keep the gzip header identical between builds.
    with gzip.GzipFile(filename="", mode="wb", fileobj=packed, mtime=0, compresslevel=9) as gz:
        gz.write(raw.getvalue())
    return packed.getvalue()


def _write_atomically(target: Path, data: bytes) -> None:
    """Readers (and a concurrent build) never see a half-written artifact."""
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m drillbook.labenv.release",
        description="Build refservice-<version>.tar.gz from the reference service (lab/).",
    )
    parser.add_argument("--version", required=True, help="release version, e.g. 1.0.0")
    parser.add_argument("--out", required=True, type=Path, help="directory of the artifact")
    parser.add_argument("--error-rate", type=float, default=0.0, help="share of requests failing (0..1)")
    parser.add_argument("--latency-ms", type=int, default=0, help="latency added to each request")
    parser.add_argument(
        "--misconfigure",
        action="append",
        default=[],
        metavar="NAME",
        help="a safeguard the release breaks on purpose (repeatable)",
    )
    parser.add_argument("--source", type=Path, default=DEFAULT_SOURCE, help="reference service tree")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Command line for Molecule's prepare step and for humans; prints the path."""
    args = _parser().parse_args(argv)
    try:
        path = build_release(
            args.version,
            args.out,
            error_rate=args.error_rate,
            latency_ms=args.latency_ms,
            misconfigure=args.misconfigure,
            source=args.source,
        )
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
