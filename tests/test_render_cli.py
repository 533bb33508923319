"""`synth render --workers`, `synth preview` and CLI error handling (raster view; bpy only to look
for a GPU)."""

from __future__ import annotations

import json
import os
import resource
import signal
import socket
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import cv2
import pytest
import yaml
from click.testing import CliRunner

from synth.cli import main as synth_cli
from synth.config import parse_config
from synth.dataset import Dataset, verify
from synth.errors import ConfigError, DataError
from synth.render import dataset_classes, render_dataset, render_source
from synth.writers import DatasetWriter

SYNTH = [sys.executable, "-m", "synth.cli"]


def write_scene(tiny_scene: dict, tmp_path: Path) -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(tiny_scene))
    return path


def test_workers_render_the_same_dataset_as_one_process(tiny_scene: dict, tmp_path: Path) -> None:
    scene = write_scene(tiny_scene, tmp_path)
    runner = CliRunner()
    one = runner.invoke(
        synth_cli, ["render", str(scene), "--out", str(tmp_path / "one"), "--renderer", "raster", "--quiet"]
    )
    assert one.exit_code == 0, one.output
    two = runner.invoke(
        synth_cli,
        ["render", str(scene), "--out", str(tmp_path / "two"), "--renderer", "raster", "--workers", "2"],
    )
    assert two.exit_code == 0, two.output
    assert verify(tmp_path / "two") == []
    for split in ("train", "val", "test"):
        for a, b in zip(
            Dataset(tmp_path / "one").samples(split), Dataset(tmp_path / "two").samples(split), strict=True
        ):
            assert a.id == b.id and a.image_path.read_bytes() == b.image_path.read_bytes()
            assert a.instances_path.read_bytes() == b.instances_path.read_bytes()


def test_n_scales_the_splits(tiny_scene: dict, tmp_path: Path) -> None:
    scene = write_scene(tiny_scene, tmp_path)
    result = CliRunner().invoke(
        synth_cli, ["render", str(scene), "--out", str(tmp_path / "d"), "--renderer", "raster", "--n", "5"]
    )
    assert result.exit_code == 0, result.output
    assert Dataset(tmp_path / "d").splits == {"train": 2, "val": 1, "test": 2}


def test_preview_sheet_has_image_and_overlay_per_sample(tiny_scene: dict, tmp_path: Path) -> None:
    scene = write_scene(tiny_scene, tmp_path)
    out = tmp_path / "sheet.png"
    result = CliRunner().invoke(
        synth_cli, ["preview", str(scene), "--n", "4", "--renderer", "raster", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    sheet = cv2.imread(str(out))
    assert sheet.shape == (2 * (64 + 14), 4 * 64, 3)  # 4 samples x (image, overlay), 4 columns
    image, overlay = sheet[14:78, 0:64], sheet[14:78, 64:128]
    assert (image != overlay).any()  # the first sample is defective: its overlay is tinted


def test_validate_checks_every_file_and_fails_if_any_is_invalid(tiny_scene: dict, tmp_path: Path) -> None:
    good = write_scene(tiny_scene, tmp_path)
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        yaml.safe_dump(
            {**tiny_scene, "seed": -1, "surface": {**tiny_scene["surface"], "roughness": [0.9, 0.1]}}
        )
    )
    missing = tmp_path / "missing.yaml"
    result = CliRunner().invoke(synth_cli, ["validate", str(bad), str(good), str(missing)])
    assert result.exit_code == 1
    lines = result.output.splitlines()
    assert lines[0] == f"Error: {bad}: 2 problem(s) in the scene config"
    assert [line.split(":")[0] for line in lines[1:3]] == ["  - seed", "  - surface.roughness"]
    assert lines[3].startswith(f"{good}: valid (metal, 10 images")
    assert lines[4:] == [f"Error: {missing}: cannot read scene config (No such file or directory)"]
    result = CliRunner().invoke(synth_cli, ["validate", str(good), str(good)])
    assert result.exit_code == 0 and len(result.output.splitlines()) == 2
    assert CliRunner().invoke(synth_cli, ["validate"]).exit_code == 2  # at least one file


def test_bad_arguments_are_one_line_errors(tiny_scene: dict, tmp_path: Path) -> None:
    scene = write_scene(tiny_scene, tmp_path)
    runner = CliRunner()
    for shard in ("3/2", "1/0", "a/2", "1/2/3"):
        result = runner.invoke(
            synth_cli, ["render", str(scene), "--out", str(tmp_path / "x"), "--shard", shard]
        )
        assert result.exit_code == 2
        assert (
            f"Error: Invalid value for '--shard': expected i/N with 0 <= i < N, got {shard!r}\n"
            in result.output
        )
    for options, message in (
        (["--workers", "2"], "Error: --shard and --workers exclude each other (the workers are shards)\n"),
        (
            ["--overwrite"],
            "Error: --overwrite cannot be used with --shard: each shard would delete the others' samples\n",
        ),
    ):
        result = runner.invoke(
            synth_cli, ["render", str(scene), "--out", str(tmp_path / "x"), "--shard", "1/2", *options]
        )
        assert result.exit_code == 2 and result.output.endswith(message)
    assert not (tmp_path / "x").exists()
    result = runner.invoke(
        synth_cli, ["render", str(tmp_path / "missing.yaml"), "--out", str(tmp_path / "x")]
    )
    assert result.exit_code == 1 and "cannot read scene config" in result.output
    result = runner.invoke(synth_cli, ["render", str(scene), "--out", str(tmp_path / "x"), "--n", "0"])
    assert result.exit_code == 1
    assert result.output == "Error: --n must be at least 1 and at most 10000000 (the config's cap), got 0\n"


def test_n_above_the_config_cap_is_refused_before_any_work(tiny_scene: dict, tmp_path: Path) -> None:
    scene, out = write_scene(tiny_scene, tmp_path), tmp_path / "d"

    def two_gib() -> None:  # before the fix, the index lists ran out of this at once
        resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))

    command = [*SYNTH, "render", str(scene), "--out", str(out), "--renderer", "raster", "--n", "1000000000"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60, preexec_fn=two_gib)
    assert result.returncode == 1
    assert (
        result.stderr
        == "Error: --n must be at least 1 and at most 10000000 (the config's cap), got 1000000000\n"
    )
    assert not out.exists()


def absent_gpu_kind() -> str:
    """A kind of GPU (--device) of which Cycles finds none on this machine."""
    pytest.importorskip("bpy")
    from synth.blender import gpu_setup

    for kind in ("cuda", "hip", "optix"):
        try:
            gpu_setup(kind)
        except ConfigError:
            return kind
    pytest.skip("this machine has GPUs of every kind")


def test_a_gpu_device_not_found_is_one_line_before_anything_is_written(
    tiny_scene: dict, tmp_path: Path
) -> None:
    scene, out, kind = write_scene(tiny_scene, tmp_path), tmp_path / "d", absent_gpu_kind()
    for options in ([], ["--workers", "2"]):  # every worker would render on the GPUs
        result = subprocess.run(
            [*SYNTH, "render", str(scene), "--out", str(out), "--device", kind, *options],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 1 and result.stdout == ""  # Cycles' own warnings are silenced
        lines = result.stderr.splitlines()
        assert len(lines) == 1, result.stderr
        assert lines[0].startswith(f"Error: --device {kind}: no {kind.upper()} device found (Cycles sees: ")
        assert not out.exists()
    result = CliRunner().invoke(
        synth_cli, ["render", str(scene), "--out", str(out), "--device", kind, "--renderer", "raster"]
    )
    assert (result.exit_code, result.output) == (
        1,
        f"Error: --device {kind}: the raster renderer runs on the CPU only (give --device cpu)\n",
    )
    for options, message in (
        (["--ray-gpus-per-actor", "1"], "--ray-gpus-per-actor 1: the actors would render on the CPU; "),
        (["--device", kind], f"--device {kind} with --ray: give --ray-gpus-per-actor (1: a GPU each)"),
    ):
        result = CliRunner().invoke(synth_cli, ["render", str(scene), "--out", str(out), "--ray", *options])
        assert result.exit_code == 2 and f"Error: {message}" in result.output
    assert not out.exists()


def test_a_dataset_is_rendered_on_one_kind_of_device(tiny_scene: dict, tmp_path: Path) -> None:
    """A GPU is recorded (the CPU, as before devices could be chosen, is not), and a resume on
    another kind of device is refused: Cycles' noise differs between them."""
    config = parse_config(tiny_scene)
    cpu, gpu = render_source(config, "", "cycles"), render_source(config, "", "cycles", "cuda")
    assert "device" not in cpu and gpu["device"] == "cuda"
    with DatasetWriter(tmp_path, dataset_classes(config), gpu):
        pass
    assert json.loads((tmp_path / "dataset.json").read_text())["source"]["device"] == "cuda"
    with pytest.raises(DataError, match=r"other parameters \(device 'cuda' -> unset\)"):
        DatasetWriter(tmp_path, dataset_classes(config), cpu)


def test_render_builds_nothing_proportional_to_n(tiny_scene: dict, tmp_path: Path, monkeypatch) -> None:
    tiny_scene["splits"] = {"train": {"count": 2_000_000}}
    original, calls = DatasetWriter.write, []

    def stop_after_two(self, *args, **kwargs):
        calls.append(args[1])
        if len(calls) > 2:
            raise KeyboardInterrupt
        return original(self, *args, **kwargs)

    monkeypatch.setattr(DatasetWriter, "write", stop_after_two)
    tracemalloc.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            render_dataset(parse_config(tiny_scene), tmp_path, renderer="raster", progress=False)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert calls == ["000000", "000001", "000002"]
    assert peak < 20e6  # a list of the 2 million indices alone would take ~70 MB


def wait_for(ready, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not ready():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(0.05)


def finished(out: Path) -> int:
    return len(list((out / "meta").rglob("*.json")))


def children(pid: int) -> list[int]:
    """Live child processes of `pid` (Linux /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid and fields[0] != "Z":
            found.append(int(stat.parent.name))
    return found


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def start_render(scene: Path, out: Path, *options: str) -> subprocess.Popen:
    command = [*SYNTH, "render", str(scene), "--out", str(out), "--renderer", "raster", "--quiet", *options]
    # Ctrl-C as a user sends it: a shell that started pytest in the background may have left
    # SIGINT ignored, and an ignored SIGINT is inherited.
    return subprocess.Popen(
        command,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )


def invoke_render(scene: Path, out: Path, *options: str):
    return CliRunner().invoke(
        synth_cli, ["render", str(scene), "--out", str(out), "--renderer", "raster", "--quiet", *options]
    )


pytestmark_linux = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc")


@pytestmark_linux
def test_a_second_render_is_refused_while_the_first_runs_and_a_killed_one_blocks_nothing(
    tiny_scene: dict, tmp_path: Path
) -> None:
    scene, out = write_scene(tiny_scene, tmp_path), tmp_path / "d"
    first = start_render(scene, out, "--n", "100000")
    try:
        wait_for(lambda: finished(out) > 0, 60, "the first render to write a sample")
        held = (
            f"Error: {out} is being written by another run (pid {first.pid} on {socket.gethostname()}, "
            "shard 0/1); wait for it to finish or stop it\n"
        )
        for options in (["--n", "3"], ["--n", "3", "--overwrite"], ["--n", "100000"]):
            result = invoke_render(scene, out, *options)
            assert (result.exit_code, result.output) == (1, held), options
        assert first.poll() is None  # still rendering: nothing was taken from it
        assert (
            json.loads((out / "dataset.json").read_text())["source"]["config"]["splits"]["train"]["count"] > 3
        )
    finally:
        first.kill()
        first.wait(timeout=30)
    assert (out / ".locks" / "shard-0-of-1.lock").exists()  # left behind by the kill, but unlocked
    result = invoke_render(scene, out, "--n", "3", "--overwrite")
    assert result.exit_code == 0, result.output
    assert Dataset(out).splits == {"train": 1, "val": 1, "test": 1} and verify(out) == []


@pytestmark_linux
def test_overwrite_is_refused_while_another_shard_runs(tiny_scene: dict, tmp_path: Path) -> None:
    scene, out = write_scene(tiny_scene, tmp_path), tmp_path / "d"
    shard = start_render(scene, out, "--n", "100000", "--shard", "1/2")
    try:
        wait_for(lambda: finished(out) > 0, 60, "the shard to write a sample")
        result = invoke_render(scene, out, "--n", "3", "--overwrite")
        assert result.exit_code == 1
        assert result.output == (
            f"Error: {out} is being written by another run (pid {shard.pid} on {socket.gethostname()}); "
            "it cannot be overwritten while that runs\n"
        )
        assert shard.poll() is None
    finally:
        shard.kill()
        shard.wait(timeout=30)


def test_separate_shard_processes_write_one_dataset(tiny_scene: dict, tmp_path: Path) -> None:
    scene, out = write_scene(tiny_scene, tmp_path), tmp_path / "d"
    shards = [start_render(scene, out, "--n", "40", "--shard", f"{i}/2") for i in range(2)]
    assert [p.wait(timeout=120) for p in shards] == [0, 0]
    assert Dataset(out).splits == {"train": 16, "val": 8, "test": 16} and verify(out) == []


@pytestmark_linux
@pytest.mark.parametrize(("signum", "status"), [(signal.SIGTERM, 128 + signal.SIGTERM), (signal.SIGINT, 1)])
def test_stopping_render_workers_stops_its_workers(
    tiny_scene: dict, tmp_path: Path, signum: int, status: int
) -> None:
    scene, out = write_scene(tiny_scene, tmp_path), tmp_path / "d"
    parent = start_render(scene, out, "--n", "100000", "--workers", "2")
    workers: list[int] = []
    try:
        wait_for(lambda: finished(out) >= 2, 60, "the workers to write samples")
        workers = children(parent.pid)
        assert len(workers) == 2
        result = invoke_render(scene, out, "--n", "3")  # the parent holds the whole dataset
        assert (
            result.exit_code == 1
            and f"(pid {parent.pid} on {socket.gethostname()}, shard 0/1)" in result.output
        )
        parent.send_signal(signum)
        assert parent.wait(timeout=30) == status
        wait_for(lambda: not any(alive(w) for w in workers), 15, "the workers to exit")
    finally:
        for pid in [parent.pid, *workers]:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
        parent.wait(timeout=30)
    count = finished(out)
    time.sleep(1.0)
    assert finished(out) == count  # nobody writes any more
    assert not list(out.rglob("*.tmp"))  # the workers were asked to stop, so they cleaned up


def test_read_only_out_is_a_one_line_error(tiny_scene: dict, tmp_path: Path, read_only_dir: Path) -> None:
    scene = write_scene(tiny_scene, tmp_path)
    for out in (read_only_dir, read_only_dir / "d"):
        result = invoke_render(scene, out)
        assert result.exit_code == 2
        assert f"Invalid value for '--out': {out}: cannot be written: {read_only_dir} is not writable" in (
            result.output
        )
