"""The Ray backend (how a sweep outgrows one machine) runs the same per-seed jobs as the local one: a
two-seed debug sweep on a local Ray instance writes byte-identical metrics.jsonl. Needs the `ray` extra."""

from pathlib import Path

import pytest

ray = pytest.importorskip("ray")


def _metrics(out: Path) -> dict[str, str]:
    return {str(p.relative_to(out)): p.read_text() for p in sorted(out.glob("runs/*/seed*/metrics.jsonl"))}


def test_ray_sweep_matches_local(tmp_path):
    from wav.cli import main

    args = ["reproduce", "acquisition", "--preset", "debug", "--seeds", "0-1", "--strategies", "random,uncertainty,wav", "--jobs", "2"]
    assert main(args + ["--out", str(tmp_path / "local")]) == 0
    try:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
        assert main(args + ["--backend", "ray", "--out", str(tmp_path / "ray")]) == 0
    finally:
        ray.shutdown()
    local, remote = _metrics(tmp_path / "local"), _metrics(tmp_path / "ray")
    assert len(local) == 6 and local == remote
