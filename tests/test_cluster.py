"""``--address`` against a real 2-node Ray cluster on this machine.

Two ``ray start --block`` processes (head bound to 127.0.0.1, and a second node with a
custom resource), each in its own process group and a dedicated --temp-dir, so the test
stops exactly the processes it started (``ray stop`` would stop every Ray on the machine).
Trials ask for the custom resource, so they can only run on the second node: the node id
each trial reports must be that node's.
"""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import psutil
import pytest

ROOT = Path(__file__).resolve().parents[1]
RAY = str(Path(sys.executable).with_name("ray"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ports() -> list[str]:   # two nodes on one machine: no fixed default port may be shared
    return [f"--{name}={_free_port()}" for name in ("node-manager-port", "object-manager-port", "metrics-export-port",
                                                    "dashboard-agent-listen-port", "dashboard-agent-grpc-port",
                                                    "runtime-env-agent-port")]


def _stop(process: subprocess.Popen) -> None:
    """Stop one ``ray start --block`` and everything under it (its own process group)."""
    try:
        tree = [process, *psutil.Process(process.pid).children(recursive=True)]
    except psutil.NoSuchProcess:
        tree = [process]
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    for p in tree:
        try:
            p.kill()
        except (psutil.NoSuchProcess, ProcessLookupError):
            pass
    process.wait(timeout=30)


def _nodes(address: str, env: dict) -> dict[str, float]:
    """node id → its worker_node resource, for the alive nodes of the cluster."""
    code = ("import json, ray; ray.init(address=%r, log_to_driver=False); "
            "print(json.dumps({n['NodeID']: n['Resources'].get('worker_node', 0) for n in ray.nodes() if n['Alive']}))"
            % address)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    return json.loads(out.stdout.strip().splitlines()[-1]) if out.returncode == 0 and out.stdout.strip() else {}


@pytest.mark.slow
def test_search_runs_its_trials_on_the_second_node_of_a_real_cluster(tmp_path):
    temp = tempfile.mkdtemp(prefix="hpcm-ray-", dir="/tmp")   # short: Ray's socket paths have a length limit
    env = {**os.environ, "RAY_AUTH_MODE": "token", "HPCM_TUNE_CACHE": str(tmp_path / "cache")}
    port = _free_port()
    address = f"127.0.0.1:{port}"
    common = ["--block", "--disable-usage-stats", "--node-ip-address=127.0.0.1", f"--temp-dir={temp}"]
    started = []
    try:
        started.append(subprocess.Popen(
            [RAY, "start", "--head", f"--port={port}", f"--ray-client-server-port={_free_port()}", "--num-cpus=1",
             "--include-dashboard=false", *common, *_ports()],
            env=env, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        deadline = time.time() + 60
        while time.time() < deadline and not _nodes(address, env):
            time.sleep(1)
        started.append(subprocess.Popen(
            [RAY, "start", f"--address={address}", "--num-cpus=2", '--resources={"worker_node": 2}', *common,
             *_ports()], env=env, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        while time.time() < deadline and len(nodes := _nodes(address, env)) < 2:
            time.sleep(1)
        assert len(nodes) == 2, f"cluster did not come up: {nodes}"
        (worker,) = [n for n, r in nodes.items() if r == 2]

        r = subprocess.run([sys.executable, "-m", "search.run", "--space", "baseline", "--name", "cluster",
                            "--preset", "cpu-smoke", "--lambdas", "0.0035", "0.0067", "0.013", "0.025", "--max-epochs", "1",
                            "--steps-per-epoch", "1", "--batch-size", "2", "--patch-size", "64", "--seeds", "2",
                            "--address", address, "--trial-resources", '{"worker_node": 1}',
                            "--storage-path", str(tmp_path)],
                           cwd=ROOT, capture_output=True, text=True, timeout=300, env=env)
        assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
        assert f"connected to Ray cluster at {address}" in r.stdout
        table = pd.read_csv(tmp_path / "cluster" / "results.csv")
        assert len(table) == 2 and (table["status"] == "TERMINATED").all()
        assert set(table["node_id"]) == {worker}          # every trial ran on the second node
    finally:
        for process in reversed(started):
            _stop(process)
        left = [p for p in psutil.process_iter(["cmdline"]) if temp in " ".join(p.info["cmdline"] or [])]
        shutil.rmtree(temp, ignore_errors=True)
    assert not left, left


def test_concurrency_is_derived_from_the_resources_ray_reports(capsys):
    """A local Ray node with fake resources (8 GPUs, 16 CPUs, 3 of a custom one): as many trials
    as fit, by hand: min over resources of floor(cluster / per trial)."""
    import ray

    from search.cluster import cluster_max_concurrent
    from search.config import SearchConfig
    from trainable.errors import InputError

    def config(**values):
        return SearchConfig.create("phase2_delta", "gpu-short", **values)

    ray.init(address="local", num_cpus=16, num_gpus=8, resources={"big_node": 3}, include_dashboard=False,
             log_to_driver=False)
    try:
        assert cluster_max_concurrent(config(cpus_per_trial=1, gpus_per_trial=1)) == 8        # 8 / 1 GPUs
        assert "trials at once: 8 (the cluster has CPU 16, GPU 8" in capsys.readouterr().out
        assert cluster_max_concurrent(config(cpus_per_trial=4, gpus_per_trial=2)) == 4        # 8 / 2 GPUs, 16 / 4 CPUs
        assert cluster_max_concurrent(config(cpus_per_trial=1, gpus_per_trial=0.5)) == 16     # 8 / 0.5
        assert cluster_max_concurrent(config(cpus_per_trial=3, gpus_per_trial=0.5)) == 5      # CPUs: floor(16 / 3)
        assert cluster_max_concurrent(config(cpus_per_trial=1, gpus_per_trial=1,
                                             trial_resources={"big_node": 1})) == 3          # custom resource
        assert cluster_max_concurrent(SearchConfig.create("phase2_delta", "gpu-day")) == 1      # 16 CPUs each (loader): CPUs bind
        assert cluster_max_concurrent(config(gpus_per_trial=1, max_concurrent=2)) == 2          # explicit wins
        with pytest.raises(InputError, match="asks for GPU 16 but the cluster has GPU 8"):
            cluster_max_concurrent(config(gpus_per_trial=16))
    finally:
        ray.shutdown()
