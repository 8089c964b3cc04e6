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


def test_unreachable_ray_address_fails_fast_in_one_line_and_writes_nothing(tmp_path, capsys):
    import time

    from wav.cli import main

    out = tmp_path / "out"
    t0 = time.perf_counter()
    rc = main(["reproduce", "acquisition", "--preset", "debug", "--seeds", "0-1", "--backend", "ray", "--ray-address", "127.0.0.1:1", "--out", str(out)])
    assert rc == 1 and time.perf_counter() - t0 < 30
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "127.0.0.1:1" in err[0] and "no Ray head answers" in err[0]
    assert not out.exists()


def test_jobs_ship_their_inputs_and_send_their_records_back(tmp_path):
    """Without a shared filesystem: a worker writes the shipped inputs it lacks, and the driver writes the
    records a job returns (files it already holds with the same bytes are left alone)."""
    from wav.experiments.common import _remote_job, records, write_records

    inp = tmp_path / "node" / "data" / "pool.npz"
    got = _remote_job(lambda: inp.read_bytes(), (), {str(inp): b"pool bytes"})
    assert got == b"pool bytes"
    run = tmp_path / "worker" / "runs" / "wav" / "seed0"
    run.mkdir(parents=True)
    (run / "metrics.jsonl").write_text('{"round": 0}\n')
    (run / "done").write_text("ok\n")
    rec = records(run)
    assert sorted(rec) == [str((run / "done").resolve()), str((run / "metrics.jsonl").resolve())]
    driver = {k.replace("worker", "driver"): v for k, v in rec.items()}
    write_records(driver)
    assert (tmp_path / "driver" / "runs" / "wav" / "seed0" / "metrics.jsonl").read_text() == '{"round": 0}\n'
