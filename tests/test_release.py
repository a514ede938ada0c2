"""Release artifacts of the reference service: content, determinism, immutability."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import pytest

from drillbook.labenv.release import build_release


def test_artifact_holds_the_service_and_its_knobs(tmp_path: Path) -> None:
    path = build_release("2.0.0", tmp_path, error_rate=0.2, latency_ms=300, misconfigure=["cors"])
    assert path.name == "refservice-2.0.0.tar.gz"
    with tarfile.open(path) as tar:
        names = tar.getnames()
        release = json.loads(tar.extractfile("release.json").read())  # type: ignore[union-attr]
    assert release == {"version": "2.0.0", "error_rate": 0.2, "latency_ms": 300, "misconfigure": ["cors"]}
    for needed in ("refservice/main.py", "alembic.ini", "requirements.txt", "migrations/env.py"):
        assert any(n.endswith(needed) for n in names), needed
    assert not any("__pycache__" in n for n in names)


def test_same_version_same_content_is_a_no_op_different_content_is_refused(tmp_path: Path) -> None:
    first = build_release("1.2.3", tmp_path)
    data = first.read_bytes()
    assert build_release("1.2.3", tmp_path).read_bytes() == data  # deterministic
    with pytest.raises(ValueError, match=r"1\.2\.3"):
        build_release("1.2.3", tmp_path, error_rate=0.5)
    assert first.read_bytes() == data


def test_a_slow_tail_is_a_share_of_requests(tmp_path: Path) -> None:
    """--latency-share stages a slow path (p95 up, median not); at 1 the release file is as before."""
    path = build_release("2.1.0", tmp_path, latency_ms=40, latency_share=0.2)
    with tarfile.open(path) as tar:
        release = json.loads(tar.extractfile("release.json").read())  # type: ignore[union-attr]
    assert release["latency_share"] == 0.2 and release["latency_ms"] == 40
    with pytest.raises(ValueError, match="latency_share"):
        build_release("2.1.1", tmp_path, latency_share=0)
