"""The throughput and latency benchmark: simulator, target and agent as separate processes.

``python loadtest/bench.py`` (``make bench``) starts three processes on 127.0.0.1 -- the
Kubernetes API simulator (``python -m agent_sim``), the target (``loadtest/target.py``,
configurable delay and body size) and the agent (``python -m agent run``) -- then:

1. **raw baseline**: a plain aiohttp ``ClientSession`` loop sends the same N requests to
   the same target at the same concurrency (its requests/s is the ceiling this machine
   allows a Python client; the agent is judged as a ratio of it, measured in the same run);
2. **throughput**: N HTTP tasks spread over M WorkflowTaskSets, created through the
   Kubernetes API as fast as the simulator takes them, until every node is fulfilled;
   steps 1 and 2 alternate ``--repetitions R`` times (baseline, agent, baseline, agent, ...;
   the tasksets of each repetition are deleted before the next): on a shared machine one
   baseline run varies far more than the agent does, so the report's ``ratio`` is the
   median repetition's (min and max beside it), and CPU cost per task / per request -- which
   noise moves far less than wall time -- is reported too;
3. **one task per taskset** (``--single-tasks N``, 4000 by default, 0 to skip): steps 1 and 2
   again with N tasks in N tasksets, the shape of a cluster running many small workflows,
   where every task costs its own status patch and its own watch events (reported under
   ``one_task_per_taskset``, with the same fields);
4. **light load** (``--light-iterations K``): one taskset with one task at a time, K times.

Each shape's headline is its throughput next to the agent's CPU per task (all its processes
summed: what a cluster pays, and what noise on a shared machine moves least) and the rig's
CPU per task (``rig_cpu_us_per_task``: simulator, target and this process, measured around
the agent's runs only), since on a small machine the rig competes with the agent for cores,
and how much of a core each agent process used meanwhile (``agent_busy_by_process``): a
process less busy spends more CPU on the same task, so a load split over processes that
one could carry costs more per task.

Besides the JSON line, a report is written (``--report-dir``, off with ``--no-report``):
the JSON, a PNG with throughput, latency and CPU per repetition (matplotlib), and a short
Markdown page that shows it.

One watch on the tasksets records when each node's ``status.nodes`` entry first shows a
fulfilled phase; latency is that moment minus the start of the create request of its
taskset (both on this process's monotonic clock). The run ends with ONE JSON line on
stdout (progress goes to stderr). Agent CPU seconds come from ``/proc/PID/stat``
(utime + stime, during the measured phase) and peak RSS from ``VmHWM``, both summed over
the agent's processes (``--processes``: one per CPU by default, like a pod given N CPUs);
``agent_peak_pss_mib`` is the sampled peak of their summed PSS, which counts the pages the
workers share with their fork server once (the sum of RSS counts them once per process).

``--replicas N`` runs the agent as N members of a Lease group instead (``--membership
lease``; each a separate ``python -m agent run`` process with its own API user, started
by ``loadtest/members.py``): CPU and memory are the members' together, the counters are
summed over them, and ``replicas`` in the report gives what each member cost the API
server during the throughput phase (requests, watch bytes; the simulator's per-user
counters) and patches per task -- the cost of sharing the work (docs/replicas.md).

``--serve -- COMMAND`` runs no benchmark: it starts the same processes, runs COMMAND with
``LOADTEST_KUBECONFIG``, ``LOADTEST_NAMESPACE`` and ``LOADTEST_TARGET_URL`` set (the
locustfile reads them) and stops everything when it exits (``make loadtest``).

Every wait is bounded (``--timeout`` for the throughput phase, fixed bounds for start-up
and each light iteration); every child is terminated in ``finally`` (SIGTERM, then SIGKILL)
and dies with this process even if it is killed (``PR_SET_PDEATHSIG``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import json
import math
import os
import secrets
import shlex
import shutil
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, BinaryIO

import aiohttp
import orjson

__all__ = [
    "BenchConfig",
    "ResultWatcher",
    "main",
    "percentile",
    "raw_aiohttp_rps",
    "run_bench",
    "running_stack",
    "serve_stack",
    "summarise_repetitions",
    "write_report",
]

REPO = Path(__file__).resolve().parent.parent
DEFAULT_REPORT_DIR = Path(__file__).resolve().parent / "reports"
TARGET_SCRIPT = Path(__file__).resolve().parent / "target.py"
MEMBERS_SCRIPT = Path(__file__).resolve().parent / "members.py"
NAMESPACE = "bench"
GROUP_PATH = "/apis/argoproj.io/v1alpha1"
FULFILLED = frozenset({"Succeeded", "Failed", "Error"})
ARGO_DEFAULTS = ("--task-workers", "16", "--patch-rate", "10s", "--patch-mode", "tick")
TRANSPORT_ENV = "ARGO_AGENT_TRANSPORT"
#: The report's key for the one-task-per-taskset shape (the batched one is the top level).
SINGLE_SHAPE = "one_task_per_taskset"

_START_TIMEOUT = 60.0
_STOP_TIMEOUT = 15.0
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def _log(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def percentile(values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile (``fraction`` in [0, 1]) of a non-empty sequence."""
    if not values:
        raise ValueError("percentile of no values")
    ordered = sorted(values)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


def _latency_summary(seconds: Sequence[float]) -> dict[str, float]:
    return {
        "min": round(min(seconds) * 1000, 1),
        "p50": round(percentile(seconds, 0.50) * 1000, 1),
        "p99": round(percentile(seconds, 0.99) * 1000, 1),
        "max": round(max(seconds) * 1000, 1),
    }


# -- child processes ----------------------------------------------------------------------


def _die_with_parent() -> None:
    # Children must not outlive a bench killed with SIGKILL (Linux only; best effort).
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


@dataclass(slots=True)
class ProcStats:
    """CPU seconds and peak RSS of one process, read from ``/proc``."""

    cpu_s: float
    peak_rss_mib: float

    @classmethod
    def read(cls, pid: int, *, tree: bool = True) -> ProcStats:
        """The process and (``tree``) all its descendants (an agent with ``--processes N``).

        CPU includes children already reaped (``cutime``/``cstime``); the peak is the sum of
        each live process's own peak, an upper bound of the tree's peak at any one time.
        """
        cpu = peak = 0.0
        for index, member in enumerate(_tree(pid) if tree else [pid]):
            try:
                fields = _stat_fields(member)
                status = Path(f"/proc/{member}/status").read_text()
            except OSError:
                continue  # exited meanwhile
            ticks = int(fields[11]) + int(fields[12])  # utime + stime
            if tree and index == 0:
                ticks += int(fields[13]) + int(fields[14])  # reaped children
            cpu += ticks / _CLOCK_TICKS
            for line in status.splitlines():
                if line.startswith("VmHWM:"):
                    peak += int(line.split()[1]) / 1024
        return cls(cpu_s=cpu, peak_rss_mib=peak)


def _stat_fields(pid: int) -> list[str]:
    """The fields of ``/proc/PID/stat`` after the command name (``state`` first)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat[stat.rindex(")") + 2 :].split()


def cpu_by_process(pid: int) -> dict[int, float]:
    """CPU seconds of ``pid`` and of each of its descendants, each its own."""
    seconds: dict[int, float] = {}
    for member in _tree(pid):
        try:
            fields = _stat_fields(member)
        except OSError:
            continue  # exited meanwhile
        seconds[member] = (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS
    return seconds


def busy_by_process(
    before: dict[int, float], after: dict[int, float], *, seconds: float
) -> list[float]:
    """How much of a core each process used over ``seconds`` (busiest first; processes
    under half a per cent left out): with ``--processes N``, whether the load needed N.

    A process that spends the same CPU per task at any load would show here only its share
    of the tasks; the agent's do not (docs/performance.md), which is why the split matters.
    """
    if seconds <= 0:
        return []
    shares = ((after[pid] - before.get(pid, 0.0)) / seconds for pid in after)
    return sorted((round(share, 2) for share in shares if share >= 0.005), reverse=True)


class PssSampler:
    """The peak of the agent's memory as its pod would be charged: the sum of PSS.

    With ``--processes N`` the workers share the fork server's pages copy-on-write; summing
    each process's RSS (``agent_peak_rss_mib``) counts those pages once per process, PSS
    splits them between the processes that share them. Sampled every 200 ms (reading
    smaps_rollup is not free, and the bench shares the cores with the agent).
    """

    def __init__(self, pid: int, *, interval: float = 0.2) -> None:
        self._pid = pid
        self._interval = interval
        self.peak_mib = 0.0

    def sample(self) -> float:
        total = 0.0
        for member in _tree(self._pid):
            try:
                rollup = Path(f"/proc/{member}/smaps_rollup").read_text()
            except OSError:
                continue  # exited meanwhile
            for line in rollup.splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1]) / 1024
                    break
        self.peak_mib = max(self.peak_mib, total)
        return total

    async def run(self) -> None:
        while True:
            self.sample()
            await asyncio.sleep(self._interval)


def _tree(pid: int) -> list[int]:
    """``pid`` and its descendants, parents first."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int(_stat_fields(int(entry.name))[1])
        except OSError:
            continue
        children.setdefault(ppid, []).append(int(entry.name))
    out = [pid]
    for member in out:
        out.extend(children.get(member, ()))
    return out


def _open_log(path: Path) -> BinaryIO:
    # A local file opened once per child at start-up: not worth a thread.
    return open(path, "wb")


class Child:
    """One child process with its output in a log file; stopped in ``finally`` by the caller."""

    def __init__(self, name: str, argv: Sequence[str], *, workdir: Path, env: dict[str, str]):
        self.name = name
        self.argv = list(argv)
        self.env = env
        self.log_path = workdir / f"{name}.log"
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self, *, stdout_pipe: bool = False) -> None:
        with _open_log(self.log_path) as log_file:  # the child keeps its own descriptor
            self.proc = await asyncio.create_subprocess_exec(
                *self.argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE if stdout_pipe else log_file,
                stderr=log_file,
                env=self.env,
                cwd=REPO,
                preexec_fn=_die_with_parent,
            )

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    async def ready_line(self, *, timeout: float) -> dict[str, Any]:
        """The JSON line a child prints once it serves (simulator, target)."""
        assert self.proc is not None and self.proc.stdout is not None
        try:
            async with asyncio.timeout(timeout):
                line = await self.proc.stdout.readline()
        except TimeoutError:
            raise RuntimeError(
                f"{self.name} not ready after {timeout:g}s:\n{self.logs()}"
            ) from None
        if not line:
            await self.proc.wait()
            raise RuntimeError(f"{self.name} exited ({self.proc.returncode}):\n{self.logs()}")
        ready: dict[str, Any] = json.loads(line)
        return ready

    def check_alive(self) -> None:
        if self.proc is not None and self.proc.returncode is not None:
            raise RuntimeError(f"{self.name} exited ({self.proc.returncode}):\n{self.logs()}")

    def stats(self) -> ProcStats:
        return ProcStats.read(self.pid)

    async def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.proc.wait(), _STOP_TIMEOUT)
            except TimeoutError:
                _log(f"{self.name} ignored SIGTERM for {_STOP_TIMEOUT:g}s: killing it")
                with contextlib.suppress(ProcessLookupError):
                    self.proc.kill()
                await self.proc.wait()
        if self.proc.stdout is not None:
            with contextlib.suppress(Exception):
                self.proc.stdout.feed_eof()

    def logs(self, tail: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-tail:]
        except OSError:
            return ""


# -- the Kubernetes side --------------------------------------------------------------------


def taskset(name: str, tasks: dict[str, Any]) -> dict[str, Any]:
    """A WorkflowTaskSet as Argo's controller creates it (owned by its Workflow)."""
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "WorkflowTaskSet",
        "metadata": {
            "name": name,
            "namespace": NAMESPACE,
            "ownerReferences": [
                {
                    "apiVersion": "argoproj.io/v1alpha1",
                    "kind": "Workflow",
                    "name": name,
                    "uid": f"uid-{name}",
                    "controller": True,
                }
            ],
        },
        "spec": {"tasks": tasks},
    }


class ResultWatcher:
    """One watch on the namespace's tasksets: the first time each node shows a fulfilled phase.

    Survives the end of a watch (resumes from the last version seen) and a 410 (re-lists).
    """

    def __init__(self, session: aiohttp.ClientSession, base_url: str) -> None:
        self._session = session
        self._url = f"{base_url}{GROUP_PATH}/namespaces/{NAMESPACE}/workflowtasksets"
        self.seen: dict[tuple[str, str], float] = {}
        self.phases: dict[str, int] = {}
        self.failures: list[str] = []
        self._expected: dict[str, int] = {}
        self._done: dict[str, asyncio.Future[None]] = {}
        self._count: dict[str, int] = {}
        self._version = ""

    def expect(self, name: str, nodes: int) -> asyncio.Future[None]:
        """A future completed once ``nodes`` nodes of taskset ``name`` are fulfilled."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._expected[name] = nodes
        self._done[name] = future
        self._check(name)
        return future

    async def start(self) -> None:
        await self._list()

    async def run(self) -> None:
        while True:
            try:
                await self._watch()
            except (aiohttp.ClientError, TimeoutError) as exc:
                _log(f"watch interrupted ({exc!r}); resuming")
                await asyncio.sleep(0.2)

    async def _list(self) -> None:
        async with self._session.get(self._url) as resp:
            resp.raise_for_status()
            body = await resp.json()
        self._version = body["metadata"]["resourceVersion"]
        for item in body.get("items") or ():
            self._observe(item)

    async def _watch(self) -> None:
        params = {
            "watch": "1",
            "resourceVersion": self._version,
            "allowWatchBookmarks": "true",
            "timeoutSeconds": "3600",
        }
        timeout = aiohttp.ClientTimeout(total=None, sock_read=None)
        async with self._session.get(self._url, params=params, timeout=timeout) as resp:
            resp.raise_for_status()
            # The load generator shares the cores with the agent: decode cheaply (orjson),
            # and scan only new bytes for line ends (events are whole tasksets, ~50 KB).
            pending = bytearray()
            async for chunk in resp.content.iter_any():
                start = len(pending)
                pending += chunk
                end = pending.rfind(b"\n", start)
                if end < 0:
                    continue
                lines = bytes(pending[:end]).split(b"\n")
                del pending[: end + 1]
                for line in lines:
                    if line.strip() and not self._event(orjson.loads(line)):
                        await self._list()  # 410: the history is gone, catch up from a list
                        return

    def _event(self, event: dict[str, Any]) -> bool:
        obj = event.get("object") or {}
        kind = event.get("type")
        if kind == "ERROR":
            if obj.get("code") == 410:
                return False
            raise aiohttp.ClientError(f"watch error: {obj}")
        version = (obj.get("metadata") or {}).get("resourceVersion")
        if version:
            self._version = version
        if kind in ("ADDED", "MODIFIED"):
            self._observe(obj)
        return True

    def _observe(self, obj: dict[str, Any]) -> None:
        now = time.monotonic()
        name = obj["metadata"]["name"]
        nodes = (obj.get("status") or {}).get("nodes") or {}
        fresh = 0
        for node_id, node in nodes.items():
            phase = node.get("phase") if isinstance(node, dict) else None
            if phase in FULFILLED and (name, node_id) not in self.seen:
                self.seen[(name, node_id)] = now
                self.phases[phase] = self.phases.get(phase, 0) + 1
                if phase != "Succeeded" and len(self.failures) < 3:
                    self.failures.append(f"{name}/{node_id}: {phase}: {node.get('message')}")
                fresh += 1
        if fresh:
            self._count[name] = self._count.get(name, 0) + fresh
            self._check(name)

    def _check(self, name: str) -> None:
        future = self._done.get(name)
        if future is not None and not future.done():
            if self._count.get(name, 0) >= self._expected[name]:
                future.set_result(None)


# -- the phases ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BenchConfig:
    """What one ``bench.py`` run does (the command-line flags)."""

    tasks: int = 20_000
    tasksets: int = 100
    concurrency: int = 200
    delay: float = 0.0
    size: int = 100
    argo_defaults: bool = False
    processes: int = 1
    transport: str | None = None
    light: bool = False
    light_iterations: int = 100
    raw: bool = True
    timeout: float = 600.0
    target_server: str = "protocol"
    agent_log_level: str = "info"
    keep_logs: bool = False
    profile: str | None = None
    agent_args: tuple[str, ...] = ()
    repetitions: int = 5
    report_dir: str | None = str(DEFAULT_REPORT_DIR)
    replicas: int = 0  # > 0: that many members of a Lease group (loadtest/members.py)
    #: Tasks of the one-task-per-taskset shape (as many tasksets); 0: not measured.
    single_tasks: int = 4000


async def raw_aiohttp_rps(urls: Sequence[str], *, concurrency: int) -> tuple[float, int]:
    """Requests/s of a plain aiohttp loop over ``urls`` at ``concurrency``; and failures."""
    connector = aiohttp.TCPConnector(limit=concurrency, limit_per_host=0)
    failures = 0
    next_index = 0
    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker() -> None:
            nonlocal next_index, failures
            while next_index < len(urls):
                url = urls[next_index]
                next_index += 1
                try:
                    async with session.get(url) as resp:
                        await resp.read()
                        if resp.status != 200:
                            failures += 1
                except aiohttp.ClientError:
                    failures += 1

        started = time.monotonic()
        await asyncio.gather(*(worker() for _ in range(min(concurrency, len(urls)))))
        elapsed = time.monotonic() - started
    return len(urls) / elapsed, failures


async def _create(session: aiohttp.ClientSession, base_url: str, body: dict[str, Any]) -> None:
    url = f"{base_url}{GROUP_PATH}/namespaces/{NAMESPACE}/workflowtasksets"
    async with session.post(url, json=body) as resp:
        if resp.status != 201:
            raise RuntimeError(
                f"create {body['metadata']['name']}: {resp.status} {await resp.text()}"
            )


def _split(total: int, parts: int) -> list[int]:
    base, extra = divmod(total, parts)
    return [base + (1 if i < extra else 0) for i in range(parts)]


async def _throughput(
    cfg: BenchConfig,
    *,
    session: aiohttp.ClientSession,
    api_url: str,
    urls: Sequence[str],
    watcher: ResultWatcher,
    alive: Callable[[], None],
) -> dict[str, Any]:
    run_id = secrets.token_hex(3)
    sizes = _split(cfg.tasks, cfg.tasksets)
    bodies: list[dict[str, Any]] = []
    done: list[asyncio.Future[None]] = []
    cursor = 0
    for index, count in enumerate(sizes):
        name = f"bench-{run_id}-{index:05d}"
        tasks = {
            f"{name}-{j}": {"name": "http", "http": {"url": urls[cursor + j]}} for j in range(count)
        }
        cursor += count
        bodies.append(taskset(name, tasks))
        done.append(watcher.expect(name, count))
    created_at: dict[str, float] = {}
    creates = asyncio.Semaphore(8)

    async def create(body: dict[str, Any]) -> None:
        async with creates:
            created_at[body["metadata"]["name"]] = time.monotonic()
            await _create(session, api_url, body)

    started = time.monotonic()
    await asyncio.gather(*(create(body) for body in bodies))
    submitted = time.monotonic() - started
    _log(f"{cfg.tasksets} tasksets ({cfg.tasks} tasks) created in {submitted:.2f}s")
    await _wait_all(done, timeout=cfg.timeout, alive=alive, progress=lambda: len(watcher.seen))
    mine = [(name, seen) for (name, _), seen in watcher.seen.items() if name in created_at]
    latencies = [seen - created_at[name] for name, seen in mine]
    finished = max(seen for _, seen in mine)
    seconds = finished - started
    return {
        "seconds": round(seconds, 3),
        "submit_seconds": round(submitted, 3),
        "tasks_per_s": round(cfg.tasks / seconds, 1),
        "latency_ms": _latency_summary(latencies),
    }


async def _wait_all(
    futures: Sequence[asyncio.Future[None]],
    *,
    timeout: float,
    alive: Callable[[], None],
    progress: Callable[[], int],
) -> None:
    deadline = time.monotonic() + timeout
    last_report = time.monotonic()
    pending = set(futures)
    while pending:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(
                f"{len(pending)} taskset(s) not fulfilled after {timeout:g}s "
                f"({progress()} node results seen)"
            )
        _, pending = await asyncio.wait(pending, timeout=min(left, 1.0))
        alive()
        if time.monotonic() - last_report >= 10:
            last_report = time.monotonic()
            _log(f"... {progress()} node results seen")


async def _light(
    cfg: BenchConfig,
    *,
    session: aiohttp.ClientSession,
    api_url: str,
    url: str,
    watcher: ResultWatcher,
    alive: Callable[[], None],
) -> dict[str, Any]:
    run_id = secrets.token_hex(3)
    per_iteration = 30.0 + (10.0 if cfg.argo_defaults else 0.0)
    latencies: list[float] = []
    for index in range(cfg.light_iterations):
        name = f"light-{run_id}-{index:05d}"
        node = f"{name}-0"
        done = watcher.expect(name, 1)
        started = time.monotonic()
        await _create(
            session, api_url, taskset(name, {node: {"name": "http", "http": {"url": url}}})
        )
        await _wait_all([done], timeout=per_iteration, alive=alive, progress=lambda: 0)
        latencies.append(watcher.seen[(name, node)] - started)
    return {"iterations": cfg.light_iterations, "latency_ms": _latency_summary(latencies)}


async def _metrics(session: aiohttp.ClientSession, url: str) -> dict[str, float]:
    wanted = {
        "argo_agent_patch_batches_total": "patches",
        "argo_agent_patch_nodes_total": "patched_nodes",
        "argo_agent_watch_events_total": "watch_events",
        "argo_agent_watch_events_unchanged_total": "watch_events_unchanged",
        "argo_agent_watch_events_not_owned_total": "watch_events_not_owned",
        "argo_agent_tasksets_watched": "tasksets_watched",
    }
    found: dict[str, float] = {}
    with contextlib.suppress(aiohttp.ClientError, TimeoutError):
        async with session.get(url + "/metrics", timeout=aiohttp.ClientTimeout(total=5)) as resp:
            text = await resp.text()
        for line in text.splitlines():
            name, _, value = line.partition(" ")
            key = wanted.get(name.split("{", 1)[0])
            if key and not line.startswith("#"):
                found[key] = found.get(key, 0.0) + float(value)
    return found


@contextlib.asynccontextmanager
async def _profiled(output: str | None, *, pid: int, workdir: Path) -> AsyncIterator[None]:
    """Sample the agent with py-spy while the block runs (``--profile``); no-op without one."""
    if not output:
        yield
        return
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    kind = {".svg": "flamegraph", ".json": "speedscope"}.get(Path(output).suffix, "raw")
    spy = Child(
        "py-spy",
        [
            py_spy,
            "record",
            "--pid",
            str(pid),
            "--subprocesses",
            "--rate",
            "100",
            "--format",
            kind,
            "--output",
            output,
        ],
        workdir=workdir,
        env=dict(os.environ),
    )
    await spy.start()
    await asyncio.sleep(0.5)  # attached before the work starts
    spy.check_alive()
    try:
        yield
    finally:
        assert spy.proc is not None
        if spy.proc.returncode is None:
            spy.proc.send_signal(signal.SIGINT)  # py-spy writes its output on SIGINT
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(spy.proc.wait(), 60)
        await spy.stop()
        if spy.proc.returncode not in (0, -signal.SIGINT):
            _log(f"py-spy exited {spy.proc.returncode}:\n{spy.logs()}")
        _log(f"py-spy profile of the agent written to {output}")


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _transport_supported() -> bool:
    # The agent's settings list their environment variables; is there a transport switch?
    try:
        from agent.service.settings import Settings
    except ImportError:
        return False
    for info in Settings.model_fields.values():
        if TRANSPORT_ENV in getattr(info.validation_alias, "choices", ()):
            return True
    return False


async def _wait_ready(url: str, child: Child) -> None:
    deadline = time.monotonic() + _START_TIMEOUT
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            child.check_alive()
            with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                async with session.get(url, timeout=aiohttp.ClientTimeout(total=2)) as resp:
                    if resp.status == 200:
                        return
            await asyncio.sleep(0.05)
    raise RuntimeError(f"{child.name} not ready after {_START_TIMEOUT:g}s:\n{child.logs()}")


@dataclass(slots=True)
class Stack:
    """The three running processes and how to reach them."""

    api_url: str
    target_url: str
    kubeconfig: Path
    token: str
    metrics_url: str
    workers: int
    workdir: Path
    sim: Child
    target: Child
    agent: Child
    #: --replicas: every member's metrics URL (the first is ``metrics_url``)
    member_metrics_urls: tuple[str, ...] = ()

    @property
    def all_metrics_urls(self) -> tuple[str, ...]:
        return self.member_metrics_urls or (self.metrics_url,)

    def alive(self) -> None:
        """Raise (with the log tail) if any child has exited."""
        for child in (self.sim, self.target, self.agent):
            child.check_alive()


@contextlib.asynccontextmanager
async def running_stack(cfg: BenchConfig) -> AsyncIterator[Stack]:
    """Simulator, target and agent started and ready; all stopped on exit, whatever happens."""
    workdir = Path(tempfile.mkdtemp(prefix="agent-bench-"))
    token = secrets.token_urlsafe(18)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    workers = 16 if cfg.argo_defaults else cfg.concurrency
    agent_env = {
        **env,
        "ARGO_AGENT_CA_DIR": str(workdir / "no-ca"),
        "ARGO_AGENT_LOG_LEVEL": cfg.agent_log_level,
    }
    if cfg.transport:
        agent_env[TRANSPORT_ENV] = cfg.transport
    kubeconfig = workdir / "kubeconfig"
    metrics_port = _free_port()
    sim_argv = [
        sys.executable,
        "-m",
        "agent_sim",
        "--port",
        "0",
        "--kubeconfig",
        str(kubeconfig),
        # One argument: a random token may start with "-", which argparse would take for
        # an option (that made ~1 run in 64 fail to start the simulator).
        f"--token={token}",
        "--namespace",
        NAMESPACE,
        "--history-limit",
        "1000000",
        "--bookmark-interval",
        "5",
    ]
    target_argv = [
        sys.executable,
        str(TARGET_SCRIPT),
        "--delay",
        str(cfg.delay),
        "--size",
        str(cfg.size),
        "--server",
        cfg.target_server,
    ]
    agent_argv = [
        sys.executable,
        "-m",
        "agent",
        "run",
        "--kubeconfig",
        str(kubeconfig),
        "--namespace",
        NAMESPACE,
        "--metrics-host",
        "127.0.0.1",
        "--metrics-port",
        str(metrics_port),
        "--log-format",
        "text",
        *(ARGO_DEFAULTS if cfg.argo_defaults else ("--task-workers", str(workers))),
        *(("--processes", str(cfg.processes)) if cfg.processes > 1 else ()),
        *cfg.agent_args,
    ]
    sim = Child("simulator", sim_argv, workdir=workdir, env=env)
    target = Child("target", target_argv, workdir=workdir, env=env)
    agent = Child("agent", agent_argv, workdir=workdir, env=agent_env)
    children = [sim, target, agent]
    ok = False
    try:
        await sim.start(stdout_pipe=True)
        await target.start(stdout_pipe=True)
        api_url = (await sim.ready_line(timeout=_START_TIMEOUT))["url"]
        target_url = (await target.ready_line(timeout=_START_TIMEOUT))["url"]
        member_urls: tuple[str, ...] = ()
        if cfg.replicas:
            agent.argv, member_urls = await _members_argv(
                cfg, agent_argv, api_url=api_url, kubeconfig=kubeconfig, token=token
            )
            metrics_port = int(member_urls[0].rsplit(":", 1)[1])
        await agent.start()
        metrics_url = f"http://127.0.0.1:{metrics_port}"
        for url in member_urls or (metrics_url,):
            await _wait_ready(f"{url}/readyz", agent)
        yield Stack(
            api_url=api_url,
            target_url=target_url,
            kubeconfig=kubeconfig,
            token=token,
            metrics_url=metrics_url,
            workers=workers,
            workdir=workdir,
            sim=sim,
            target=target,
            agent=agent,
            member_metrics_urls=member_urls,
        )
        ok = True
    except BaseException:
        for child in children:
            if child.proc is not None:
                _log(f"--- {child.name} log tail ({child.log_path}) ---\n{child.logs()}")
        raise
    finally:
        for child in reversed(children):
            await child.stop()
        if ok and not cfg.keep_logs:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            _log(f"logs kept in {workdir}")


async def _members_argv(
    cfg: BenchConfig, agent_argv: Sequence[str], *, api_url: str, kubeconfig: Path, token: str
) -> tuple[list[str], tuple[str, ...]]:
    """``--replicas``: the members' launcher command line, and each member's metrics URL.

    Each member gets its own token (a user of its own, so the simulator counts it apart)
    and kubeconfig; ``--kubeconfig`` and ``--metrics-port`` of ``agent_argv`` are replaced.
    """
    common: list[str] = []
    skip = False
    for arg in agent_argv[4:]:  # after: python -m agent run
        if skip:
            skip = False
        elif arg in ("--kubeconfig", "--metrics-port", "--processes"):
            skip = True
        else:
            common.append(arg)
    members: list[str] = []
    urls: list[str] = []
    async with aiohttp.ClientSession() as session:
        for index in range(cfg.replicas):
            own_token, user = secrets.token_urlsafe(18), f"member-{index}"
            body = {"token": own_token, "user": user}
            async with session.post(f"{api_url}/_sim/tokens", json=body) as resp:
                if resp.status != 201:
                    raise RuntimeError(f"add a member token: {resp.status} {await resp.text()}")
            own_config = _member_kubeconfig(kubeconfig, user=user, token=token, own=own_token)
            port = _free_port()
            urls.append(f"http://127.0.0.1:{port}")
            own = ["--kubeconfig", str(own_config), "--metrics-port", str(port)]
            own += ["--membership", "lease", "--agent-id", user]
            members += ["--member", shlex.join(own)]
    return [sys.executable, str(MEMBERS_SCRIPT), *members, "--", *common], tuple(urls)


def _member_kubeconfig(kubeconfig: Path, *, user: str, token: str, own: str) -> Path:
    # A small local file written once per member at start-up: not worth a thread.
    path = kubeconfig.with_name(f"kubeconfig-{user}")
    path.write_text(kubeconfig.read_text().replace(token, own))
    return path


async def _usage(session: aiohttp.ClientSession, api_url: str, *, clear: bool = False) -> Any:
    """The simulator's per-user counters (``clear``: start them afresh)."""
    method = session.delete if clear else session.get
    async with method(f"{api_url}/_sim/usage") as resp:
        answer = await resp.json()
    return {} if clear else answer["users"]


def _replica_costs(usage: dict[str, Any], *, tasks: int, patches: float) -> dict[str, Any]:
    """What each member cost the API server, and the patches per task of all of them."""
    members = {user: u for user, u in usage.items() if user.startswith("member-")}
    count = max(1, len(members))
    return {
        "members": len(members),
        "api_requests_per_member": round(sum(u["requests"] for u in members.values()) / count),
        "watch_mib_per_member": round(
            sum(u["watchBytes"] for u in members.values()) / count / 2**20, 1
        ),
        "patches_per_task": round(patches / tasks, 3) if tasks else 0.0,
        "per_member": {
            user: {"requests": u["requests"], "watch_bytes": u["watchBytes"]}
            for user, u in sorted(members.items())
        },
    }


async def run_bench(cfg: BenchConfig) -> dict[str, Any]:
    """Start the three processes, run the phases, stop everything; return the report."""
    transport_applied = _transport_supported()
    if cfg.transport and not transport_applied:
        _log(f"warning: the agent has no {TRANSPORT_ENV} setting; --transport is not applied")
    async with running_stack(cfg) as stack:
        headers = {"Authorization": f"Bearer {stack.token}"}
        connector = aiohttp.TCPConnector(limit=32)
        async with aiohttp.ClientSession(headers=headers, connector=connector) as session:
            report: dict[str, Any] = {
                "tasks": 0 if cfg.light else cfg.tasks,
                "tasksets": 0 if cfg.light else cfg.tasksets,
                "concurrency": cfg.concurrency,
                "agent_workers": stack.workers,
                "delay_s": cfg.delay,
                "size": cfg.size,
                "argo_defaults": cfg.argo_defaults,
                "agent_processes": cfg.processes,
                "transport": cfg.transport or "default",
                "transport_applied": bool(cfg.transport) and transport_applied,
                **({"agent_replicas": cfg.replicas} if cfg.replicas else {}),
            }
            watcher = ResultWatcher(session, stack.api_url)
            await watcher.start()
            watch_task = asyncio.create_task(watcher.run(), name="result watch")
            try:
                if not cfg.light:
                    report.update(await _throughput_phase(cfg, stack, session, watcher))
                if not cfg.light and cfg.single_tasks:
                    # Many small workflows, as real clusters run them: one status patch and
                    # the watch events of one taskset per task, nothing shared.
                    await _clear_namespace(session, stack)
                    single = replace(cfg, tasks=cfg.single_tasks, tasksets=cfg.single_tasks)
                    _log(f"one task per taskset: {cfg.single_tasks} tasksets x 1 task")
                    report[SINGLE_SHAPE] = {
                        "tasks": cfg.single_tasks,
                        "tasksets": cfg.single_tasks,
                        **await _throughput_phase(single, stack, session, watcher),
                    }
                if cfg.light or cfg.light_iterations:
                    _log(f"light load: {cfg.light_iterations} x 1 task")
                    before = stack.agent.stats()
                    light = await _light(
                        cfg,
                        session=session,
                        api_url=stack.api_url,
                        url=f"{stack.target_url}/light",
                        watcher=watcher,
                        alive=stack.alive,
                    )
                    after = stack.agent.stats()
                    light["agent_cpu_s"] = round(after.cpu_s - before.cpu_s, 2)
                    report["light"] = light
                    report["agent_peak_rss_mib"] = round(after.peak_rss_mib, 1)
            finally:
                watch_task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await watch_task
        return report


async def _throughput_phase(
    cfg: BenchConfig, stack: Stack, session: aiohttp.ClientSession, watcher: ResultWatcher
) -> dict[str, Any]:
    urls = [f"{stack.target_url}/bench/{i}" for i in range(cfg.tasks)]
    repetitions: list[dict[str, Any]] = []
    counters_before = await _all_metrics(session, stack)
    seen_before, phases_before = len(watcher.seen), dict(watcher.phases)
    before = {c.name: c.stats() for c in (stack.agent, stack.sim, stack.target)}
    bench_before = ProcStats.read(os.getpid(), tree=False)
    memory = PssSampler(stack.agent.pid)
    sampler = asyncio.create_task(memory.run(), name="pss sampler")
    if cfg.replicas:
        await _usage(session, stack.api_url, clear=True)
    try:
        async with _profiled(cfg.profile, pid=stack.agent.pid, workdir=stack.workdir):
            for index in range(cfg.repetitions):
                if index:
                    await _clear_namespace(session, stack)
                repetitions.append(await _repetition(cfg, stack, session, watcher, urls, index))
    finally:
        sampler.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sampler
    report = summarise_repetitions(repetitions)
    after = stack.agent.stats()
    report["agent_peak_rss_mib"] = round(after.peak_rss_mib, 1)
    report["agent_peak_pss_mib"] = round(memory.peak_mib, 1)
    # Over every repetition (the baselines' CPU is the bench's own, in "bench").
    report["other_cpu_s"] = {
        "simulator": round(stack.sim.stats().cpu_s - before["simulator"].cpu_s, 2),
        "target": round(stack.target.stats().cpu_s - before["target"].cpu_s, 2),
        "bench": round(ProcStats.read(os.getpid(), tree=False).cpu_s - bench_before.cpu_s, 2),
    }
    report["results"] = {
        phase: count - phases_before.get(phase, 0)
        for phase, count in watcher.phases.items()
        if count > phases_before.get(phase, 0)
    }
    report["fulfilled"] = len(watcher.seen) - seen_before
    if watcher.failures:
        report["failure_samples"] = list(watcher.failures)
    counters = await _all_metrics(session, stack)
    counters.pop("tasksets_watched", None)  # a barrier between repetitions, not a result
    # This phase's share of the agent's counters (another phase may have run before).
    report.update({k: v - counters_before.get(k, 0.0) for k, v in counters.items()})
    if "watch_events" in report:
        report["watch_events_decoded"] = (
            report["watch_events"]
            - report.get("watch_events_unchanged", 0.0)
            - report.get("watch_events_not_owned", 0.0)
        )
    if cfg.replicas:
        report["replicas"] = _replica_costs(
            await _usage(session, stack.api_url),
            tasks=cfg.tasks * cfg.repetitions,
            patches=report.get("patches", 0.0),
        )
    return report


async def _all_metrics(session: aiohttp.ClientSession, stack: Stack) -> dict[str, float]:
    """The counters of :func:`_metrics`, summed over every member (``--replicas``)."""
    total: dict[str, float] = {}
    for url in stack.all_metrics_urls:
        for key, value in (await _metrics(session, url)).items():
            total[key] = total.get(key, 0.0) + value
    return total


async def _repetition(
    cfg: BenchConfig,
    stack: Stack,
    session: aiohttp.ClientSession,
    watcher: ResultWatcher,
    urls: Sequence[str],
    index: int,
) -> dict[str, Any]:
    """One baseline (unless ``--no-raw``) then one agent run, each with its CPU cost."""
    rep: dict[str, Any] = {"repetition": index + 1}
    if cfg.raw:
        _log(f"[{index + 1}/{cfg.repetitions}] raw aiohttp loop: {cfg.tasks} requests")
        # The raw loop runs in this process: process_time() has ns resolution (/proc's
        # ticks are 10 ms), and the only other work here meanwhile is an idle watch.
        cpu_before = time.process_time()
        rps, raw_failures = await asyncio.wait_for(
            raw_aiohttp_rps(urls, concurrency=cfg.concurrency), cfg.timeout
        )
        raw_cpu = time.process_time() - cpu_before
        rep["raw_aiohttp_rps"] = round(rps, 1)
        rep["raw_failures"] = raw_failures
        rep["raw_cpu_s"] = round(raw_cpu, 3)
        rep["raw_cpu_us_per_request"] = round(raw_cpu / cfg.tasks * 1e6, 1)
    _log(f"[{index + 1}/{cfg.repetitions}] agent: {cfg.tasks} tasks in {cfg.tasksets} tasksets")
    agent_before = stack.agent.stats()
    each_before = cpu_by_process(stack.agent.pid)
    rig_before = (stack.sim.stats().cpu_s, stack.target.stats().cpu_s, time.process_time())
    rep.update(
        await _throughput(
            cfg,
            session=session,
            api_url=stack.api_url,
            urls=urls,
            watcher=watcher,
            alive=stack.alive,
        )
    )
    agent_cpu = stack.agent.stats().cpu_s - agent_before.cpu_s
    rep["agent_busy_by_process"] = busy_by_process(
        each_before, cpu_by_process(stack.agent.pid), seconds=rep["seconds"]
    )
    rig_after = (stack.sim.stats().cpu_s, stack.target.stats().cpu_s, time.process_time())
    rep["agent_cpu_s"] = round(agent_cpu, 2)
    # What the rig spent meanwhile: on two cores it competes with the agent for them.
    rep["rig_cpu_us_per_task"] = {
        name: round((after - before) / cfg.tasks * 1e6, 1)
        for name, before, after in zip(
            ("simulator", "target", "bench"), rig_before, rig_after, strict=True
        )
    }
    rep["agent_cpu_us_per_task"] = round(agent_cpu / cfg.tasks * 1e6, 1)
    if cfg.raw:
        rep["ratio"] = round(rep["tasks_per_s"] / rep["raw_aiohttp_rps"], 3)
        if agent_cpu > 0:
            rep["cpu_ratio"] = round(
                rep["raw_cpu_us_per_request"] / (agent_cpu / cfg.tasks * 1e6), 3
            )
        _log(
            f"[{index + 1}/{cfg.repetitions}] ratio {rep['ratio']}: agent {rep['tasks_per_s']} "
            f"tasks/s vs raw {rep['raw_aiohttp_rps']} requests/s"
        )
    return rep


def summarise_repetitions(repetitions: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The report's top-level throughput fields from the repetitions.

    The headline figures (``ratio``, ``tasks_per_s``, ``raw_aiohttp_rps``, ``seconds``,
    ``latency_ms``, ``agent_cpu_s``) are those of the *median repetition*: the one whose
    ratio is the (low) median, so they stay consistent with each other and ``ratio`` is a
    ratio that was measured, not a mix of two runs. Spreads and CPU costs beside them.
    """
    if not repetitions:
        raise ValueError("no repetitions")
    with_ratio = [r for r in repetitions if "ratio" in r]
    if with_ratio:
        ordered = sorted(with_ratio, key=lambda r: r["ratio"])
    else:  # --no-raw: the median by throughput
        ordered = sorted(repetitions, key=lambda r: r["tasks_per_s"])
    median = ordered[(len(ordered) - 1) // 2]
    report: dict[str, Any] = {"repetitions": len(repetitions)}
    for key in ("raw_aiohttp_rps", "seconds", "submit_seconds", "tasks_per_s", "latency_ms"):
        if key in median:
            report[key] = median[key]
    if with_ratio:
        report["raw_failures"] = sum(r["raw_failures"] for r in repetitions)
        report["ratio"] = median["ratio"]
        report["ratio_min"] = ordered[0]["ratio"]
        report["ratio_max"] = ordered[-1]["ratio"]
    report["agent_cpu_s"] = median["agent_cpu_s"]
    if "agent_busy_by_process" in median:
        report["agent_busy_by_process"] = median["agent_busy_by_process"]
    rigs = [r["rig_cpu_us_per_task"] for r in repetitions if "rig_cpu_us_per_task" in r]
    if rigs:
        report["rig_cpu_us_per_task"] = {
            name: round(statistics.median(rig[name] for rig in rigs), 1) for name in rigs[0]
        }
    report["agent_cpu_us_per_task"] = round(
        statistics.median(r["agent_cpu_us_per_task"] for r in repetitions), 1
    )
    if with_ratio:
        report["raw_cpu_us_per_request"] = round(
            statistics.median(r["raw_cpu_us_per_request"] for r in repetitions), 1
        )
        cpu_ratios = sorted(r["cpu_ratio"] for r in repetitions if "cpu_ratio" in r)
        if cpu_ratios:
            report["cpu_ratio"] = round(statistics.median(cpu_ratios), 3)
            report["cpu_ratio_min"] = cpu_ratios[0]
            report["cpu_ratio_max"] = cpu_ratios[-1]
    report["tasks_per_s_min"] = min(r["tasks_per_s"] for r in repetitions)
    report["tasks_per_s_max"] = max(r["tasks_per_s"] for r in repetitions)
    if with_ratio:
        report["raw_aiohttp_rps_min"] = min(r["raw_aiohttp_rps"] for r in repetitions)
        report["raw_aiohttp_rps_max"] = max(r["raw_aiohttp_rps"] for r in repetitions)
    report["per_repetition"] = list(repetitions)
    return report


async def _clear_namespace(session: aiohttp.ClientSession, stack: Stack) -> None:
    """Delete the last repetition's tasksets and wait until the agent has let them go."""
    url = f"{stack.api_url}{GROUP_PATH}/namespaces/{NAMESPACE}/workflowtasksets"
    async with session.delete(url) as resp:
        if resp.status != 200:
            raise RuntimeError(f"delete the tasksets: {resp.status} {await resp.text()}")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        stack.alive()
        if (await _all_metrics(session, stack)).get("tasksets_watched", 1) == 0:
            return
        await asyncio.sleep(0.1)
    raise TimeoutError("the agent still tracks deleted tasksets after 60s")


async def serve_stack(cfg: BenchConfig, command: Sequence[str]) -> int:
    """Run ``command`` against a running stack (``--serve``); its exit code.

    The command gets ``LOADTEST_KUBECONFIG``, ``LOADTEST_NAMESPACE`` and
    ``LOADTEST_TARGET_URL`` in its environment (the locustfile reads them) and is killed
    after ``--timeout`` seconds.
    """
    async with running_stack(cfg) as stack:
        env = {
            **os.environ,
            "LOADTEST_KUBECONFIG": str(stack.kubeconfig),
            "LOADTEST_NAMESPACE": NAMESPACE,
            "LOADTEST_TARGET_URL": f"{stack.target_url}/loadtest",
        }
        _log(f"stack up: API {stack.api_url}, target {stack.target_url}; running {command[0]}")
        proc = await asyncio.create_subprocess_exec(
            *command, stdin=asyncio.subprocess.DEVNULL, env=env, preexec_fn=_die_with_parent
        )
        try:
            async with asyncio.timeout(cfg.timeout):
                while True:
                    try:
                        return await asyncio.wait_for(proc.wait(), 1.0)
                    except TimeoutError:
                        stack.alive()
        except TimeoutError:
            raise TimeoutError(f"{command[0]} still running after {cfg.timeout:g}s") from None
        finally:
            if proc.returncode is None:
                proc.terminate()
                try:
                    await asyncio.wait_for(proc.wait(), _STOP_TIMEOUT)
                except TimeoutError:
                    proc.kill()
                    await proc.wait()


# -- command line ---------------------------------------------------------------------------


def _cpus() -> int:
    from agent.service.process import available_cpus  # what --processes 0 would choose

    return available_cpus()


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {text}")
    return value


def _non_negative_float(text: str) -> float:
    value = float(text)
    if not value >= 0 or math.isinf(value):
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {text}")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python loadtest/bench.py",
        description="Benchmark the agent against a local simulator and target; prints one "
        "JSON line. Everything runs on 127.0.0.1.",
    )
    parser.add_argument("--tasks", type=_positive_int, default=20_000, help="HTTP tasks (N)")
    parser.add_argument("--tasksets", type=_positive_int, default=100, help="tasksets (M)")
    parser.add_argument(
        "--concurrency",
        type=_positive_int,
        default=200,
        help="the agent's --task-workers and the raw loop's concurrency",
    )
    parser.add_argument("--delay", type=_non_negative_float, default=0.0, help="target delay (s)")
    parser.add_argument("--size", type=int, default=100, help="target body bytes")
    parser.add_argument(
        "--argo-defaults",
        action="store_true",
        help="run the agent as Argo's: 16 workers, a patch every 10 s tick",
    )
    parser.add_argument(
        "--processes",
        type=_positive_int,
        default=_cpus(),
        help="the agent's --processes (default: the CPUs this process may use; "
        "1 with --argo-defaults)",
    )
    parser.add_argument(
        "--replicas",
        type=_positive_int,
        help="run the agent as N members of a Lease group, each a separate process with "
        "its own API user (--membership lease); reports each member's API cost",
    )
    parser.add_argument(
        "--transport",
        choices=("http1", "aiohttp", "httpcore"),
        help=f"agent HTTP transport, passed as {TRANSPORT_ENV} (if the agent supports it)",
    )
    parser.add_argument(
        "--single-tasks",
        type=int,
        default=4000,
        help="then N tasks in N tasksets, one task each, as many small workflows run "
        "(reported under '" + SINGLE_SHAPE + "'; 0: skip)",
    )
    parser.add_argument("--light", action="store_true", help="only the light-load phase")
    parser.add_argument(
        "--light-iterations",
        type=int,
        default=100,
        help="light-load iterations after the throughput phase (0: none)",
    )
    parser.add_argument("--no-raw", action="store_true", help="skip the raw aiohttp baseline")
    parser.add_argument(
        "--repetitions",
        type=_positive_int,
        default=5,
        help="baseline/agent pairs, interleaved; the report gives the median (default 5)",
    )
    parser.add_argument(
        "--report-dir",
        default=str(DEFAULT_REPORT_DIR),
        metavar="DIR",
        help="where the report (JSON, PNG plots, Markdown) is written (default: %(default)s)",
    )
    parser.add_argument("--no-report", action="store_true", help="write no report files")
    parser.add_argument(
        "--timeout",
        type=_non_negative_float,
        default=900.0,
        help="bound (s) on the raw loop and on the throughput phase each",
    )
    parser.add_argument("--target-server", choices=("protocol", "aiohttp"), default="protocol")
    parser.add_argument(
        "--agent-log-level", choices=("debug", "info", "warning", "error"), default="info"
    )
    parser.add_argument("--keep-logs", action="store_true", help="keep the children's logs")
    parser.add_argument(
        "--profile",
        metavar="PATH",
        help="record the agent with py-spy during the throughput phase "
        "(.svg flame graph, .json speedscope, else collapsed stacks)",
    )
    parser.add_argument(
        "--agent-arg",
        action="append",
        default=[],
        metavar="ARG",
        help="extra argument for 'python -m agent run' (repeatable)",
    )
    parser.add_argument(
        "--serve",
        action="store_true",
        help="no benchmark: start the stack, run COMMAND against it (LOADTEST_KUBECONFIG, "
        "LOADTEST_NAMESPACE, LOADTEST_TARGET_URL set), stop; exit with its code",
    )
    parser.add_argument("command", nargs="*", help="with --serve: the command, after --")
    return parser


def _config(argv: Sequence[str] | None) -> tuple[BenchConfig, list[str]]:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.serve and not args.command:
        parser.error("--serve needs a command after --")
    if args.command and not args.serve:
        parser.error(f"unexpected arguments {args.command} (a command needs --serve)")
    if args.tasksets > args.tasks:
        parser.error(f"--tasksets ({args.tasksets}) must not exceed --tasks ({args.tasks})")
    if args.size < 0:
        parser.error(f"--size: must be >= 0, got {args.size}")
    if args.single_tasks < 0:
        parser.error(f"--single-tasks: must be >= 0, got {args.single_tasks}")
    if args.light_iterations < 0:
        parser.error(f"--light-iterations: must be >= 0, got {args.light_iterations}")
    if args.light and args.light_iterations < 1:
        parser.error("--light needs --light-iterations >= 1")
    if args.timeout <= 0:
        parser.error("--timeout: must be > 0")
    cfg = BenchConfig(
        tasks=args.tasks,
        tasksets=args.tasksets,
        concurrency=args.concurrency,
        delay=args.delay,
        size=args.size,
        argo_defaults=args.argo_defaults,
        processes=1 if args.argo_defaults or args.replicas else args.processes,
        transport=args.transport,
        light=args.light,
        light_iterations=args.light_iterations,
        raw=not args.no_raw,
        timeout=args.timeout,
        target_server=args.target_server,
        agent_log_level=args.agent_log_level,
        keep_logs=args.keep_logs,
        agent_args=tuple(args.agent_arg),
        profile=os.path.abspath(args.profile) if args.profile else None,
        repetitions=args.repetitions,
        report_dir=None if args.no_report else os.path.abspath(args.report_dir),
        replicas=args.replicas or 0,
        single_tasks=args.single_tasks,
    )
    return cfg, list(args.command)


async def _main(cfg: BenchConfig, command: Sequence[str]) -> dict[str, Any] | int:
    # SIGTERM ends the run like Ctrl-C: the finally blocks stop every child.
    task = asyncio.current_task()
    assert task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    if command:
        return await serve_stack(cfg, command)
    return await run_bench(cfg)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: run the benchmark and print its JSON line (1 on failure), or ``--serve``."""
    cfg, command = _config(argv)
    try:
        outcome = asyncio.run(_main(cfg, command))
    except (RuntimeError, TimeoutError, OSError, aiohttp.ClientError) as exc:
        print(f"bench failed: {exc!r}", file=sys.stderr)
        return 1
    except (KeyboardInterrupt, asyncio.CancelledError):
        print("bench interrupted", file=sys.stderr)
        return 130
    if isinstance(outcome, int):
        return outcome
    _log_summary(outcome)
    if cfg.report_dir and "per_repetition" in outcome:
        outcome["report"] = write_report(outcome, Path(cfg.report_dir))
        _log(f"report: {outcome['report']['markdown']}")
    print(json.dumps(outcome), flush=True)
    return 0


def _log_summary(report: dict[str, Any]) -> None:
    """The figures people read, on stderr (stdout is the one JSON line)."""
    for title, shape in (
        (f"{report['tasks']} tasks in {report['tasksets']} tasksets", report),
        ("one task per taskset", report.get(SINGLE_SHAPE)),
    ):
        if shape and "tasks_per_s" in shape:
            _log(f"{title}: {_headline(shape)}")
    if "ratio" in report:
        _log(
            f"ratio {report['ratio']} (median of {report['repetitions']}; min "
            f"{report['ratio_min']}, max {report['ratio_max']}): agent {report['tasks_per_s']} "
            f"tasks/s vs raw aiohttp {report['raw_aiohttp_rps']} requests/s"
        )
    if "cpu_ratio" in report:
        _log(
            f"CPU: agent {report['agent_cpu_us_per_task']} us per task, raw loop "
            f"{report['raw_cpu_us_per_request']} us per request: cpu ratio "
            f"{report['cpu_ratio']} (min {report['cpu_ratio_min']}, max "
            f"{report['cpu_ratio_max']})"
        )


def _headline(shape: dict[str, Any]) -> str:
    """Throughput with the agent's CPU per task (all its processes) and the rig's beside it."""
    rig = shape.get("rig_cpu_us_per_task", {})
    rig_text = ", ".join(f"{name} {value}" for name, value in rig.items())
    return (
        f"{shape['tasks_per_s']} tasks/s, agent CPU {shape['agent_cpu_us_per_task']} us/task "
        f"(rig us/task: {rig_text or 'n/a'}), patches {shape.get('patches', 'n/a')}, "
        f"watch events decoded {shape.get('watch_events_decoded', 'n/a')}, agent processes "
        f"busy {shape.get('agent_busy_by_process', 'n/a')} of a core"
    )


# -- the report ------------------------------------------------------------------------------


def write_report(report: dict[str, Any], directory: Path) -> dict[str, str]:
    """Write ``bench-<time>.json``, ``.png`` (if matplotlib is installed) and ``.md``.

    Returns the paths written, by kind (``json``, ``png``, ``markdown``).
    """
    directory.mkdir(parents=True, exist_ok=True)
    stem = directory / time.strftime("bench-%Y%m%d-%H%M%S")
    while stem.with_suffix(".json").exists():  # two runs within a second
        stem = stem.with_name(stem.name + "-1")
    paths = {"json": str(stem.with_suffix(".json")), "markdown": str(stem.with_suffix(".md"))}
    png = stem.with_suffix(".png")
    if _plot(report, png):
        paths["png"] = str(png)
    Path(paths["json"]).write_text(json.dumps({**report, "report": paths}, indent=2) + "\n")
    Path(paths["markdown"]).write_text(_markdown(report, png if "png" in paths else None))
    return paths


def _plot(report: dict[str, Any], path: Path) -> bool:
    """Throughput, latency and CPU cost per repetition, as one PNG; False without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")  # files only, no display
        import matplotlib.pyplot as plt
    except ImportError:
        _log("matplotlib is not installed (pip install -e '.[bench]'): no plots")
        return False
    reps = report["per_repetition"]
    index = [r["repetition"] for r in reps]
    raw = "raw_aiohttp_rps" in reps[0]
    figure, (speed, latency, cpu) = plt.subplots(1, 3, figsize=(15, 4.5))
    try:
        width = 0.38
        speed.bar(
            [i - width / 2 for i in index],
            [r["tasks_per_s"] for r in reps],
            width,
            label="agent tasks/s",
        )
        if raw:
            speed.bar(
                [i + width / 2 for i in index],
                [r["raw_aiohttp_rps"] for r in reps],
                width,
                label="raw aiohttp requests/s",
            )
            for r in reps:
                speed.annotate(
                    f"{r['ratio']:.2f}",
                    (r["repetition"] - width / 2, r["tasks_per_s"]),
                    ha="center",
                    va="bottom",
                    fontsize=8,
                )
        speed.set_title("Throughput per repetition (ratio on the agent's bar)")
        speed.set_xlabel("repetition")
        speed.set_xticks(index)
        speed.legend(fontsize=8)
        for key, marker in (("p50", "o"), ("p99", "s"), ("max", "^")):
            latency.plot(index, [r["latency_ms"][key] for r in reps], marker=marker, label=key)
        latency.set_title("Agent latency, creation -> result visible")
        latency.set_xlabel("repetition")
        latency.set_ylabel("ms")
        latency.set_xticks(index)
        latency.set_ylim(bottom=0)
        latency.legend(fontsize=8)
        cpu.plot(
            index,
            [r["agent_cpu_us_per_task"] for r in reps],
            marker="o",
            label="agent, per task (all its processes)",
        )
        if raw:
            cpu.plot(
                index,
                [r["raw_cpu_us_per_request"] for r in reps],
                marker="s",
                label="raw loop, per request",
            )
        cpu.set_title("CPU cost")
        cpu.set_xlabel("repetition")
        cpu.set_ylabel("CPU µs")
        cpu.set_xticks(index)
        cpu.set_ylim(bottom=0)
        cpu.legend(fontsize=8)
        figure.suptitle(
            f"make bench: {report['tasks']} tasks, {report['tasksets']} tasksets, concurrency "
            f"{report['concurrency']}, {report['agent_processes']} agent process(es)"
        )
        figure.tight_layout()
        figure.savefig(path, dpi=100)
    finally:
        plt.close(figure)
    return True


def _markdown(report: dict[str, Any], png: Path | None) -> str:
    lines = [
        "# make bench",
        "",
        f"{report['tasks']} tasks in {report['tasksets']} tasksets, concurrency "
        f"{report['concurrency']}, {report['agent_processes']} agent process(es), "
        f"{report['repetitions']} interleaved repetitions (baseline, agent, ...).",
        "",
    ]
    if "ratio" in report:
        lines += [
            f"- **ratio {report['ratio']}** (median; min {report['ratio_min']}, max "
            f"{report['ratio_max']}): agent {report['tasks_per_s']} tasks/s vs raw aiohttp "
            f"{report['raw_aiohttp_rps']} requests/s in the median repetition",
        ]
    if "cpu_ratio" in report:
        lines += [
            f"- **CPU**: agent {report['agent_cpu_us_per_task']} µs per task (all its "
            f"processes), raw loop {report['raw_cpu_us_per_request']} µs per request: "
            f"cpu ratio {report['cpu_ratio']} (min {report['cpu_ratio_min']}, max "
            f"{report['cpu_ratio_max']})",
        ]
    lines += [f"- **batched shape**: {_headline(report)}"]
    single = report.get(SINGLE_SHAPE)
    if single and "tasks_per_s" in single:
        lines += [f"- **one task per taskset** ({single['tasks']} tasksets): {_headline(single)}"]
    latency = ", ".join(f"{k} {v} ms" for k, v in report["latency_ms"].items())
    lines += [f"- latency, creation -> result visible (median repetition): {latency}", ""]
    if png is not None:
        lines += [f"![throughput, latency and CPU per repetition]({png.name})", ""]
    header = [
        "repetition",
        "agent tasks/s",
        "raw requests/s",
        "ratio",
        "p50 ms",
        "p99 ms",
        "agent CPU µs/task",
        "raw CPU µs/request",
    ]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in report["per_repetition"]:
        cells = [
            r["repetition"],
            r["tasks_per_s"],
            r.get("raw_aiohttp_rps", ""),
            r.get("ratio", ""),
            r["latency_ms"]["p50"],
            r["latency_ms"]["p99"],
            r["agent_cpu_us_per_task"],
            r.get("raw_cpu_us_per_request", ""),
        ]
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
