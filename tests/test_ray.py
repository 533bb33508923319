"""Rendering and domain-gap experiments on Ray (`--ray`): byte-identical to local runs, placed on
two nodes, surviving a killed actor and a killed driver, resuming, failing clearly on bad input.

One two-node cluster (a head and a worker node on this machine, 1 CPU each, no dashboard, 100 MB
object stores) serves the module and is shut down at its end, and the test checks that none of
its processes is left. Its worker node runs with a Python path on which `import bpy` fails, as
on a node where bpy is not installed: raster renders never import bpy, a Cycles render must
report that node.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import ray
import yaml
from click.testing import CliRunner
from ray.cluster_utils import Cluster

from evaluate.cli import main as evaluate_main
from synth.cli import main as synth_cli
from synth.config import parse_config
from synth.dataset import verify
from synth.render import render_dataset, scaled_config
from synth.writers import LAYOUT
from tests.test_experiments import _experiment, _fake_real
from tests.test_render_cli import absent_gpu_kind, wait_for

SYNTH = [sys.executable, "-m", "synth.cli"]
N = 200  # raster images of the tiny scene (64²): a few seconds, long enough to kill something
NODE = {"num_cpus": 1, "object_store_memory": 100 * 2**20}
OWN_HOSTS = {"127.0.0.1", "localhost", "::1", socket.gethostname()}


@pytest.fixture(autouse=True)
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """conftest's guard, but this machine's own addresses are allowed: the test clusters live on
    them (Ray joins 127.0.0.1 by the host's own interface address)."""
    own = OWN_HOSTS | {ray.util.get_node_ip_address()}
    connect = socket.socket.connect

    def local_only(self: socket.socket, address: object) -> None:
        if self.family in (socket.AF_INET, socket.AF_INET6) and address[0] not in own:  # type: ignore[index]
            raise OSError(f"network access attempted during tests: {address}")
        return connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", local_only)


def descendants(pids: set[int]) -> set[int]:
    """Live processes below `pids` (Linux /proc), `pids` included."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != "Z":
            parents[int(stat.parent.name)] = int(fields[1])
    found = {p for p in pids if p in parents}
    while True:
        more = {p for p, parent in parents.items() if parent in found} - found
        if not more:
            return found
        found |= more


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    no_bpy = tmp_path_factory.mktemp("no_bpy")
    (no_bpy / "bpy.py").write_text("raise ModuleNotFoundError(\"No module named 'bpy'\", name='bpy')\n")
    head = Cluster(initialize_head=True, head_node_args={**NODE, "include_dashboard": False})
    with pytest.MonkeyPatch.context() as patch:  # the worker node's processes inherit this
        patch.setenv("PYTHONPATH", os.pathsep.join([str(no_bpy), os.environ.get("PYTHONPATH", "")]))
        head.add_node(**NODE)
    nodes = {p.process.pid for n in head.list_all_nodes() for ps in n.all_processes.values() for p in ps}
    try:
        yield head
    finally:
        started = descendants(nodes)
        head.shutdown()
        wait_for(lambda: not descendants(started), 30, "every process of the test cluster to exit")


def node_ids(cluster: Cluster) -> tuple[str, str]:
    """The head's and the worker node's ids, as `synth render --ray` prints them."""
    (worker,) = cluster.worker_nodes
    return cluster.head_node.node_id[:8], worker.node_id[:8]


def write_scene(tiny_scene: dict, tmp_path: Path) -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(tiny_scene))
    return path


def digests(root: Path) -> dict[str, str]:
    """sha256 of every dataset file (images, masks, instances, labels, meta, COCO, the anomaly
    view, dataset.json); dataset.yaml names its own folder, and hidden temp files of a killed
    writer are no part of the dataset."""
    files = [p for name in LAYOUT if name != "dataset.yaml" for p in [root / name, *(root / name).rglob("*")]]
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in files
        if p.is_file() and not p.name.startswith(".")
    }


@pytest.fixture(scope="module")
def raster_reference(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """The tiny scene's N raster images rendered in this process, and their digests."""
    from tests.conftest import TINY_SCENE

    folder = tmp_path_factory.mktemp("reference")
    scene = write_scene(TINY_SCENE, folder)
    render_dataset(
        scaled_config(parse_config(TINY_SCENE), N), folder / "d", scene_path=str(scene), renderer="raster"
    )
    return scene, digests(folder / "d")


def render_options(scene: Path, out: Path, *options: str) -> list[str]:
    return ["render", str(scene), "--out", str(out), "--renderer", "raster", "--n", str(N), *options]


def summary(output: str) -> tuple[int, int, dict[str, int], int]:
    """rendered, skipped, samples per node and actor processes from `synth render --ray`'s output."""
    rendered, skipped = map(int, re.search(r"rendered (\d+), skipped (\d+) finished", output).groups())
    per_node, processes = {}, 0
    if match := re.search(r"Ray: samples per node (.*); (\d+) actor processes", output):
        per_node = {n: int(c) for n, c in (part.split() for part in match.group(1).split(", "))}
        processes = int(match.group(2))
    return rendered, skipped, per_node, processes


def test_two_node_cluster_renders_the_local_dataset_byte_for_byte_and_resumes(
    cluster: Cluster, raster_reference: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    scene, reference = raster_reference
    out = tmp_path / "d"
    result = CliRunner().invoke(synth_cli, render_options(scene, out, "--ray", cluster.address))
    assert result.exit_code == 0, result.output
    rendered, skipped, per_node, processes = summary(result.output)
    assert (rendered, skipped, processes) == (N, 0, 2)  # one actor per CPU slot: one per node
    assert set(per_node) == set(node_ids(cluster)) and all(per_node.values())
    assert sum(per_node.values()) == N
    assert verify(out) == [] and digests(out) == reference

    # A second run (by `auto`: the cluster of this machine) finds every sample and writes nothing.
    before = {p: p.stat().st_mtime_ns for p in (out / "meta").rglob("*.json")}
    again = CliRunner().invoke(synth_cli, render_options(scene, out, "--ray", "auto"))
    assert again.exit_code == 0, again.output
    assert summary(again.output)[:2] == (0, N)
    assert {p: p.stat().st_mtime_ns for p in (out / "meta").rglob("*.json")} == before


def actor_processes(cluster: Cluster) -> list[int]:
    """The cluster's render actors' processes (their title is `ray::SampleRenderer...`)."""
    nodes = {n.all_processes["raylet"][0].process.pid for n in cluster.list_all_nodes()}
    found = []
    for pid in descendants(nodes):
        try:
            if Path(f"/proc/{pid}/cmdline").read_bytes().startswith(b"ray::SampleRenderer"):
                found.append(pid)
        except OSError:
            continue
    return sorted(found)


def start_driver(scene: Path, out: Path, address: str) -> subprocess.Popen:
    command = [*SYNTH, *render_options(scene, out, "--ray", address)]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)


def finished(out: Path) -> int:
    return len(list((out / "meta").rglob("*.json")))


def test_an_actor_killed_mid_run_is_restarted_and_its_samples_retried(
    cluster: Cluster, raster_reference: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    scene, reference = raster_reference
    out = tmp_path / "d"
    driver = start_driver(scene, out, cluster.address)
    try:
        # both actors have written samples by now; each holds IN_FLIGHT more
        wait_for(lambda: finished(out) >= 30 and len(actor_processes(cluster)) == 2, 120, "two busy actors")
        victim = actor_processes(cluster)[0]
        os.kill(victim, signal.SIGKILL)  # mid-sample
        assert finished(out) < N
        output, _ = driver.communicate(timeout=120)
    finally:
        driver.kill()
        driver.wait()
    assert driver.returncode == 0, output
    rendered, skipped, per_node, processes = summary(output)
    assert (rendered, skipped, processes) == (N, 0, 3)  # each sample written once; one restart
    assert verify(out) == [] and digests(out) == reference


def test_a_killed_driver_leaves_a_dataset_the_next_run_resumes(
    cluster: Cluster, raster_reference: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    scene, reference = raster_reference
    out = tmp_path / "d"
    driver = start_driver(scene, out, cluster.address)
    try:
        wait_for(lambda: finished(out) >= 20, 120, "the driver to write samples")
    finally:
        driver.kill()
        driver.wait()
    kept = finished(out)
    assert 20 <= kept < N
    for meta in (out / "meta").rglob("*.json"):  # a finished sample is whole: its meta is written last
        split, image_id = meta.parent.name, meta.stem
        assert all((out / k / split / f"{image_id}{s}").exists() for k, s in (
            ("images", ".png"), ("masks", ".png"), ("instances", ".png"), ("labels", ".txt")))  # fmt: skip
    wait_for(lambda: not actor_processes(cluster), 60, "Ray to stop the dead driver's actors")
    result = CliRunner().invoke(synth_cli, render_options(scene, out, "--ray", cluster.address))
    assert result.exit_code == 0, result.output
    assert summary(result.output)[:2] == (N - kept, kept)
    assert verify(out) == [] and digests(out) == reference


def test_bad_ray_input_fails_fast_with_one_clear_line(
    cluster: Cluster, tmp_path: Path, tiny_scene: dict
) -> None:
    scene, out = write_scene(tiny_scene, tmp_path), tmp_path / "d"
    runner = CliRunner()
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    start = time.monotonic()
    result = runner.invoke(synth_cli, render_options(scene, out, "--ray", f"127.0.0.1:{port}"))
    assert time.monotonic() - start < 10
    assert result.exit_code == 1
    assert re.fullmatch(
        rf"Error: --ray 127\.0\.0\.1:{port} \(.+:{port}\): cannot reach a Ray cluster there \(Connection "
        r"refused\); is `ray start --head` running on that host, and is its port open\?\n",
        result.output,
    ), result.output
    assert not out.exists()  # checked before the dataset is touched
    for options, message in (
        (["--ray", "host:port"], "Error: --ray host:port: expected auto, host:port or ray://host:port\n"),
        (["--ray-actors", "2"], "Error: --ray-actors: only with --ray\n"),
        (["--ray", "--workers", "2"], "Error: --ray and --workers exclude each other (the Ray actors are the "
                                      "workers)\n"),
    ):  # fmt: skip
        result = runner.invoke(synth_cli, render_options(scene, out, *options))
        assert result.exit_code in (1, 2) and result.output.endswith(message), result.output
    fits = "the cluster has room for 2 actors of 1 CPUs; ask for at most 2, or add nodes"
    too_big = "no node of the cluster has 4 CPUs (the largest has 1 CPUs)"
    for number, (options, message) in enumerate((
        (["--ray-actors", "3"], f"Error: --ray-actors 3: {fits}\n"),
        (["--ray-cpus-per-actor", "4"], f"Error: --ray-cpus-per-actor / --ray-gpus-per-actor: {too_big}\n"),
    )):  # fmt: skip
        args = render_options(
            scene, tmp_path / f"room{number}", "--ray", cluster.address, "--quiet", *options
        )
        result = runner.invoke(synth_cli, args)
        assert (result.exit_code, result.output) == (1, message)

    # Cycles needs bpy on every node: the worker node has none, and is named.
    head, worker = node_ids(cluster)
    result = runner.invoke(
        synth_cli, ["render", str(scene), "--out", str(out), "--n", "2", "--ray", cluster.address, "--quiet"]
    )
    assert result.exit_code == 1
    assert result.output == (
        f"Error: the Ray cluster cannot render with cycles: node {ray.util.get_node_ip_address()} ({worker}) "
        "cannot import bpy (No module named 'bpy'); every node needs the Python environment of this one "
        "(the same defectsynth install, with bpy)\n"
    )
    assert head not in result.output


def test_domain_gap_on_ray_gives_the_local_tables(cluster: Cluster, tmp_path: Path) -> None:
    _fake_real(tmp_path / "real")
    doc = yaml.safe_load(_experiment(tmp_path).read_text())
    del doc["yolo"]
    doc["synthetic_test"] = False
    doc["scenarios"] = doc["scenarios"][:3]  # real_only, synthetic_only, synthetic_finetuned: two waves
    experiment = tmp_path / "tiny.yaml"
    experiment.write_text(yaml.safe_dump(doc))
    tables = {}
    for name, options in (("local", []), ("ray", ["--ray", cluster.address])):
        # each run in a folder of its own, so the Ray run renders too instead of sharing renders
        args = ["domain-gap", str(experiment), "--out", str(tmp_path / name / "out"), *options]
        result = CliRunner().invoke(evaluate_main, args)
        assert result.exit_code == 0, result.output
        tables[name] = json.loads((tmp_path / name / "out" / "table.json").read_text())
    assert [r[:2] for r in tables["ray"]["rows"]] == [
        ["real_only", 3],
        ["synthetic_only", 0],
        ["synthetic_finetuned", 3],
    ]
    assert tables["ray"]["header"] == tables["local"]["header"]
    assert json.dumps(tables["ray"]["rows"]) == json.dumps(tables["local"]["rows"])  # NaN-safe
    # The same cache keys: the cells, coresets and renders are named alike.
    for folder in ("out/cells", "out/coresets", "renders"):
        assert sorted(p.name for p in (tmp_path / "ray" / folder).iterdir()) == sorted(
            p.name for p in (tmp_path / "local" / folder).iterdir()
        )


@pytest.mark.blender
def test_an_actor_without_the_gpu_it_reserved_is_named_before_any_sample(
    tiny_scene: dict, tmp_path: Path
) -> None:
    """A node that declares a GPU of a kind Cycles does not find there: each actor reserving it
    looks for the --device's GPUs, and the driver stops with the node named, in one line."""
    kind = absent_gpu_kind()
    gpu_node = Cluster(
        initialize_head=True, head_node_args={**NODE, "num_gpus": 1, "include_dashboard": False}
    )
    try:
        scene, out = write_scene(tiny_scene, tmp_path), tmp_path / "d"
        options = f"--n 2 --ray {gpu_node.address} --device {kind} --ray-gpus-per-actor 1 --quiet".split()
        result = CliRunner().invoke(synth_cli, ["render", str(scene), "--out", str(out), *options])
        node = gpu_node.head_node.node_id[:8]
        assert result.exit_code == 1
        assert re.fullmatch(
            rf"Error: the Ray cluster cannot render with cycles: node \S+ \({node}\): --device {kind}: "
            rf"no {kind.upper()} device found \(Cycles sees: [^\n]+\)\n",
            result.output,
        ), result.output
        assert not any((out / "images").rglob("*.png"))
    finally:
        gpu_node.shutdown()


@pytest.mark.blender
def test_a_local_ray_instance_renders_cycles_byte_for_byte(tiny_scene: dict, tmp_path: Path) -> None:
    """`--ray` alone starts a Ray instance here (and stops it): two actors, one warm Blender each."""
    scene = write_scene(tiny_scene, tmp_path)
    actors = str(min(2, os.cpu_count() or 1))
    options = ["--out", str(tmp_path / "ray"), "--n", "3", "--ray", "--ray-actors", actors]
    command = [*SYNTH, "render", str(scene), *options]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert summary(result.stdout)[:2] == (3, 0)
    render_dataset(scaled_config(parse_config(tiny_scene), 3), tmp_path / "local", scene_path=str(scene))
    assert verify(tmp_path / "ray") == []
    assert digests(tmp_path / "ray") == digests(tmp_path / "local")


def test_ray_is_imported_only_with_ray() -> None:
    code = "import sys, synth.cli, evaluate.cli; print('ray' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout == "False\n"
