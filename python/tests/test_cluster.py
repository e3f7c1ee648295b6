"""A query through a loopback Ballista cluster from Python."""

import subprocess
import socket
import time

import pytest

import rookery
from conftest import DATA, free_port


def _wait_for_port(port: int, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"cluster process exited: {process.stderr.read().decode(errors='replace')}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    pytest.fail(f"nothing listens on port {port}")


def test_a_query_runs_on_a_loopback_cluster(rookery_bin, tmp_path):
    scheduler_port, flight_port, grpc_port = free_port(), free_port(), free_port()
    scheduler = f"127.0.0.1:{scheduler_port}"
    processes = []
    try:
        processes.append(
            subprocess.Popen(
                [rookery_bin, "--partitions", "2", "scheduler", "--bind", scheduler],
                cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            )
        )
        _wait_for_port(scheduler_port, processes[0])
        processes.append(
            subprocess.Popen(
                [rookery_bin, "--partitions", "2", "executor", "--scheduler", scheduler,
                 "--bind", f"127.0.0.1:{flight_port}", "--grpc-port", str(grpc_port), "--concurrency", "1"],
                cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            )
        )
        _wait_for_port(flight_port, processes[1])
        remote = rookery.connect(cluster=f"df://{scheduler}", partitions=2)
        local = rookery.connect(partitions=2)
        sql = (
            f"SELECT name, image_width(image) AS w, image_height(image) AS h "
            f"FROM images('{DATA / 'Test'}') ORDER BY name"
        )
        on_cluster = remote.sql(sql).to_arrow()
        assert on_cluster.num_rows == len(list((DATA / "Test").iterdir()))
        assert on_cluster.equals(local.sql(sql).to_arrow())
    finally:
        for process in processes:
            process.kill()
            process.wait()


def test_an_unreachable_cluster_is_an_error():
    with pytest.raises(rookery.Error):
        rookery.connect(cluster=f"df://127.0.0.1:{free_port()}").sql("SELECT 1").to_arrow()
