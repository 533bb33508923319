"""Render a dataset on a Ray cluster: `synth render SCENE --out DIR --ray [ADDRESS]`.

Each Ray actor holds one warm renderer (its Blender scene built once, as a local worker's) and
turns image indices into finished samples with `synth.render.render_sample`, the per-sample
path every render loop shares. The driver, one process, is the only writer: it writes each
sample through the dataset's atomic writer as it arrives. So the output needs no shared file
system, is byte-identical to a local render of the same config and seed, and resumes like one
(a killed driver leaves only complete samples). Ray restarts an actor whose process or node
died and retries the samples it held (`retries`). With a GPU `device` each actor renders on the
GPUs it reserved (`gpus`, which Ray makes the only ones its process sees). Ray is imported only
here and in evaluate.experiments.on_ray, and those only with `--ray`.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ray
from tqdm import tqdm

from synth.config import SceneConfig
from synth.errors import ConfigError, DefectsynthError
from synth.render import (
    Device,
    RenderedSample,
    RendererName,
    RenderSummary,
    check_device,
    dataset_classes,
    is_finished,
    make_renderer,
    render_sample,
    render_source,
    sigterm_unwinds,
)
from synth.scene import shard_range
from synth.writers import DatasetWriter

LOCAL = "local"  # `--ray` without an address: start a Ray instance on this machine (Ray's own name)
CONNECT_TIMEOUT_S = 5.0  # Ray itself retries an unreachable address for minutes
DEFAULT_PORT = 6379  # Ray's head port (GCS)
JOIN_ATTEMPTS = 3  # a second each, when something answers at the address but not as a Ray head
IN_FLIGHT = 2  # samples queued per actor: it renders the next while the driver writes the last
# How `--ray` alone starts a local instance: no dashboard, and workers at this process's priority,
# as `--workers` runs them (by default Ray renices its workers by 15: on a shared machine they
# would get a fraction of the CPU that local workers get). A cluster's nodes keep their own.
LOCAL_INIT: dict[str, Any] = {"include_dashboard": False, "_system_config": {"worker_niceness": 0}}


@dataclass(frozen=True)
class RayOptions:
    """Where and how to render: the cluster, the actors' count and needs, the retries."""

    address: str = LOCAL  # LOCAL, "auto" (the cluster of this node), host:port or ray://host:port
    actors: int | None = None  # None: one per slot (CPUs per actor) of the cluster
    cpus: float = 1.0  # per actor; also the Cycles threads of its renderer
    gpus: float = 0.0  # per actor: Ray's placement, and the GPUs a GPU device renders on
    retries: int = 3  # restarts of a dead actor, and retries of each sample it held


@dataclass
class RaySummary(RenderSummary):
    # Samples rendered per (Ray node id, actor process id): where the work ran.
    placed: dict[tuple[str, int], int] = field(default_factory=dict)

    @property
    def nodes(self) -> dict[str, int]:
        """Samples rendered per Ray node id."""
        counts: Counter[str] = Counter()
        for (node, _), n in self.placed.items():
            counts[node] += n
        return dict(counts)


@ray.remote
class SampleRenderer:
    """One warm renderer on some node of the cluster; renders the image indices it is sent.

    A renderer that cannot be built (no bpy, or no GPU of the device's kind, on that node) is
    not an actor crash: Ray would restart it in vain. It is kept as an error that `problem`
    reports, with whether it is a missing import.
    """

    def __init__(self, config: SceneConfig, renderer: RendererName, threads: int, device: Device):
        self.config, self.classes = config, dataset_classes(config)
        self.where = (ray.get_runtime_context().get_node_id(), os.getpid())
        self.problem_text: tuple[bool, str] | None = None
        node = f"{ray.util.get_node_ip_address()} ({self.where[0][:8]})"
        try:
            self.view = make_renderer(renderer, threads, device)
        except ImportError as error:
            self.problem_text = True, f"node {node} cannot import {error.name or 'bpy'} ({error})"
        except ConfigError as error:
            self.problem_text = False, f"node {node}: {error}"

    def problem(self) -> tuple[bool, str] | None:
        return self.problem_text

    def render(self, index: int) -> tuple[RenderedSample, tuple[str, int]]:
        return render_sample(self.view, self.config, index, self.classes), self.where


def render_on_ray(
    config: SceneConfig,
    out: str | Path,
    options: RayOptions,
    *,
    scene_path: str = "",
    renderer: RendererName = "cycles",
    shard: tuple[int, int] = (0, 1),
    finalize: bool = True,
    progress: bool = True,
    overwrite: bool = False,
    device: Device = "cpu",
) -> RaySummary:
    """Render (the shard of) a config into `out` on Ray; finished samples are skipped, and a
    run with nothing left to render starts no local Ray instance and no actor. A GPU `device`
    is looked for by each actor on its node, before any sample is sent."""
    start = time.perf_counter()
    check_device(renderer, device, local=False)
    indices = shard_range(config, *shard)
    source = render_source(config, scene_path, renderer, device)
    address = cluster_address(options.address)
    # A cluster is joined before the dataset is touched, so a wrong address changes nothing; a
    # local instance (seconds to start) is started only once there is something to render.
    with ExitStack() as stack:
        if address != LOCAL:
            stack.enter_context(ray_connection(address))
        writer = stack.enter_context(DatasetWriter(out, dataset_classes(config), source, overwrite, shard))
        skipped = sum(is_finished(writer, config, i) for i in indices)
        placed: dict[tuple[str, int], int] = {}
        if skipped < len(indices):
            with ray_connection(address):  # a joined cluster stays joined
                actors = start_actors(config, renderer, options, device)
                placed = _render(writer, config, indices, skipped, actors, options, progress)
        counts = writer.finalize() if finalize else {}
    return RaySummary(sum(placed.values()), skipped, time.perf_counter() - start, counts, placed)


def _render(
    writer: DatasetWriter,
    config: SceneConfig,
    indices: range,
    skipped: int,
    actors: list,
    options: RayOptions,
    progress: bool,
) -> dict[tuple[str, int], int]:
    """Keep IN_FLIGHT samples queued on every actor, write each one as it arrives."""
    todo = (i for i in indices if not is_finished(writer, config, i))
    in_flight: dict[ray.ObjectRef, object] = {}

    def submit(actor: object) -> None:
        index = next(todo, None)
        if index is not None:
            in_flight[actor.render.remote(index)] = actor  # type: ignore[attr-defined]

    for _ in range(IN_FLIGHT):
        for actor in actors:
            submit(actor)
    placed: Counter[tuple[str, int]] = Counter()
    desc = f"render {config.name} (Ray, {len(actors)} actors)"
    with tqdm(total=len(indices), initial=skipped, desc=desc, unit="img", disable=not progress) as bar:
        while in_flight:
            (ref,), _ = ray.wait(list(in_flight), num_returns=1)
            actor = in_flight.pop(ref)
            sample, where = _result(ref, writer.root, options.retries)
            sample.write(writer)
            placed[where] += 1
            bar.update()
            submit(actor)
    return dict(placed)


def result(ref: ray.ObjectRef) -> Any:
    """A task's value; a `DefectsynthError` it raised is raised here as itself (one line)."""
    try:
        return ray.get(ref)
    except ray.exceptions.RayTaskError as error:  # raised by the task's own code: not retried
        if isinstance(error.cause, DefectsynthError):
            raise error.cause from None
        raise


def _result(ref: ray.ObjectRef, out: Path, retries: int) -> tuple[RenderedSample, tuple[str, int]]:
    """A finished sample, or the error that stopped it as one line."""
    try:
        return result(ref)
    except ray.exceptions.RayActorError as error:
        first = str(error).splitlines()[0]
        raise DefectsynthError(
            f"{out}: a render actor died more than --ray-retries {retries} times ({first}); "
            "the finished samples are kept: run the same command again to resume"
        ) from None


def start_actors(config: SceneConfig, renderer: RendererName, options: RayOptions, device: Device) -> list:
    """The actors, each placed by Ray where its CPUs (and GPUs) are free; every one checked
    to have a working renderer before any sample is sent."""
    slots = actor_slots(options)
    count = options.actors or slots
    if count > slots:
        raise ConfigError(
            f"--ray-actors {count}: the cluster has room for {slots} actors of "
            f"{_needs(options)}; ask for at most {slots}, or add nodes"
        )
    actor = SampleRenderer.options(
        num_cpus=options.cpus,
        num_gpus=options.gpus,
        max_restarts=options.retries,
        max_task_retries=options.retries,
    )
    threads = max(1, int(options.cpus))
    actors = [actor.remote(config, renderer, threads, device) for _ in range(count)]
    try:
        problems = sorted({p for p in ray.get([a.problem.remote() for a in actors]) if p})
    except ray.exceptions.RayActorError as error:
        raise DefectsynthError(f"a render actor failed to start: {str(error).splitlines()[0]}") from None
    if problems:
        hint = "every node needs the Python environment of this one (the same defectsynth install, with bpy)"
        imports = [hint] if any(missing for missing, _ in problems) else []
        texts = [text for _, text in problems]
        raise DefectsynthError(f"the Ray cluster cannot render with {renderer}: {'; '.join(texts + imports)}")
    return actors


def actor_slots(options: RayOptions) -> int:
    """How many actors with the options' needs fit on the cluster's live nodes at once."""
    slots, largest = 0, 0.0
    for node in ray.nodes():
        if not node.get("Alive"):
            continue
        resources = node.get("Resources", {})
        cpus = resources.get("CPU", 0.0)
        largest = max(largest, cpus)
        fit = int(cpus // options.cpus)
        if options.gpus:
            fit = min(fit, int(resources.get("GPU", 0.0) // options.gpus))
        slots += fit
    if slots == 0:
        raise ConfigError(
            f"--ray-cpus-per-actor / --ray-gpus-per-actor: no node of the cluster has {_needs(options)} "
            f"(the largest has {largest:g} CPUs)"
        )
    return slots


def _needs(options: RayOptions) -> str:
    gpus = f" and {options.gpus:g} GPUs" if options.gpus else ""
    return f"{options.cpus:g} CPUs{gpus}"


def cluster_address(address: str) -> str:
    """`--ray`'s value as the address `ray.init` will use, checked to answer (Ray itself retries
    an unreachable one for minutes): LOCAL stays LOCAL, `auto` becomes this node's cluster, and
    127.0.0.1 this host's own address (as Ray joins it)."""
    if address == LOCAL:
        return address
    given, shown = address, address
    if not address.startswith("ray://"):
        from ray._private.services import canonicalize_bootstrap_address_or_die

        try:
            address = canonicalize_bootstrap_address_or_die(address)
        except ConnectionError:
            raise ConfigError(
                f"--ray {address}: no Ray cluster runs on this node (start one with `ray start --head`, "
                "or give its address)"
            ) from None
        except ValueError:
            raise ConfigError(f"--ray {address}: expected auto, host:port or ray://host:port") from None
        if address != given:
            shown = f"{given} ({address})"
    check_reachable(address, shown)
    return address


def check_reachable(address: str, shown: str, timeout_s: float = CONNECT_TIMEOUT_S) -> None:
    """Fail in seconds when nothing listens at a cluster address (`shown` in the message)."""
    host_port = address.removeprefix("ray://")
    host, _, port = host_port.rpartition(":") if ":" in host_port else (host_port, "", str(DEFAULT_PORT))
    try:
        number = int(port)
    except ValueError:
        raise ConfigError(f"--ray {shown}: expected auto, host:port or ray://host:port") from None
    try:
        with socket.create_connection((host, number), timeout=timeout_s):
            pass
    except OSError as error:
        reason = f"no answer within {timeout_s:g} s" if isinstance(error, TimeoutError) else error.strerror
        raise ConfigError(
            f"--ray {shown}: cannot reach a Ray cluster there ({reason or error}); "
            "is `ray start --head` running on that host, and is its port open?"
        ) from None


@contextmanager
def ray_connection(address: str) -> Iterator[None]:
    """Join the Ray cluster at `address` (from `cluster_address`), or start a local instance, for
    the block; a process already connected (a task on the cluster) stays connected."""
    if ray.is_initialized():
        yield
        return
    # Actors' output stays in each node's Ray logs: Blender's start-up warnings, once per actor,
    # would break the progress bar; errors come back with the samples.
    local = LOCAL_INIT if address == LOCAL else {}
    # A port that answers but is not Ray's: Ray retries once a second, this many times (default 20).
    budget = {} if address == LOCAL else {"RAY_gcs_server_port_wait_time_s": str(JOIN_ATTEMPTS)}
    try:
        with _environ(budget):
            ray.init(address=address, logging_level=logging.WARNING, log_to_driver=False, **local)
    except ConnectionError as error:
        raise ConfigError(f"--ray {address}: could not join the Ray cluster there ({error})") from None
    try:
        # SIGTERM unwinds like Ctrl-C (temp files removed, the cluster left cleanly), instead of
        # the handler ray.init set, which prints a stack and dies.
        with sigterm_unwinds():
            yield
    finally:
        ray.shutdown()


@contextmanager
def _environ(defaults: dict[str, str]) -> Iterator[None]:
    """Environment variables set for the block where the user has not set them."""
    added = {k: v for k, v in defaults.items() if k not in os.environ}
    os.environ.update(added)
    try:
        yield
    finally:
        for name in added:
            os.environ.pop(name, None)
