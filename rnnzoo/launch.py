"""``rnnzoo launch``: start N MultiWorkerMirroredStrategy workers on this machine.

    rnnzoo launch --workers 2 -- \
        rnnzoo train sentiment_gru --data D --out RUN --strategy multiworker

Each worker is the given command with its own ``TF_CONFIG`` (the cluster of all workers on
127.0.0.1 and its own index), exactly what Kubernetes' TFJob, a Slurm script or Ray Train sets on
real machines; so the command that runs here runs there unchanged. The launcher prefixes and
collects the workers' output (console + one log file per worker), stops every worker as soon as
one fails (a collective job cannot continue without it) and on Ctrl-C/SIGTERM/timeout, and exits
with the failing worker's status. It imports neither TensorFlow nor Keras.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

from rnnzoo.errors import ConfigError, DistributedError

EXIT_TIMEOUT = 124
EXIT_INTERRUPTED = 130


@dataclasses.dataclass
class LaunchResult:
    """How a launch ended: ``returncode`` 0 only when every worker exited 0."""

    returncode: int
    # Each worker's exit status (128 + N when it ended by signal N, e.g. 143 when stopped).
    worker_returncodes: list[int | None]
    log_dir: Path
    reason: str


def free_ports(n: int, host: str = "127.0.0.1") -> list[int]:
    """``n`` distinct ports the OS reports free right now (held open together, then closed)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind((host, 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _check_ports_free(ports: Sequence[int], host: str) -> None:
    for port in ports:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind((host, port))
            except OSError:
                raise ConfigError(
                    f"port {port} on {host} is in use; pass another --port-base or omit it to "
                    "pick free ports"
                ) from None


def tf_config(addresses: Sequence[str], index: int) -> str:
    """The ``TF_CONFIG`` of worker ``index`` in a cluster of ``addresses`` (worker 0 is chief)."""
    if not 0 <= index < len(addresses):
        raise ConfigError(f"worker index {index} out of range for {len(addresses)} workers")
    return json.dumps({"cluster": {"worker": list(addresses)},
                       "task": {"type": "worker", "index": index}})


def _resolve_command(command: Sequence[str]) -> list[str]:
    """Drop argparse's ``--``; run ``rnnzoo`` from this installation (this interpreter's)."""
    cmd = list(command)
    if cmd and cmd[0] == "--":
        cmd = cmd[1:]
    if not cmd:
        raise ConfigError("nothing to launch: give a command after --, e.g. "
                          "rnnzoo launch --workers 2 -- rnnzoo train NAME --data D --out RUN "
                          "--strategy multiworker")
    program, args = cmd[0], cmd[1:]
    if Path(program).name == "rnnzoo":
        if args[:1] == ["train"] and not _has_multiworker_strategy(args):
            raise ConfigError(
                "the launched `rnnzoo train` needs --strategy multiworker; without it every "
                "worker trains alone and they overwrite each other's run directory"
            )
        if program == "rnnzoo":
            script = Path(sys.executable).parent / "rnnzoo"
            cmd = [str(script), *args] if script.is_file() else [
                sys.executable, "-m", "rnnzoo.cli", *args]
    return cmd


def _has_multiworker_strategy(args: Sequence[str]) -> bool:
    for i, arg in enumerate(args):
        if arg == "--strategy" and i + 1 < len(args):
            return args[i + 1] == "multiworker"
        if arg.startswith("--strategy="):
            return arg.split("=", 1)[1] == "multiworker"
    return False


class _Stop(Exception):
    """Raised in the main thread by the SIGTERM handler."""


def _pump(stream: IO[bytes], index: int, log: IO[str], echo: bool, lock: threading.Lock) -> None:
    prefix = f"[worker {index}] "
    for raw in iter(stream.readline, b""):
        line = raw.decode("utf-8", errors="replace").rstrip("\n")
        log.write(line + "\n")
        log.flush()
        if echo:
            with lock:
                sys.stdout.write(prefix + line + "\n")
                sys.stdout.flush()
    stream.close()


def _exit_status(code: int) -> int:
    return 128 - code if code < 0 else code  # killed by signal N -> 128 + N, as shells report


def _stop(procs: list[subprocess.Popen], grace: float) -> None:
    """SIGTERM each worker's process group, then SIGKILL whatever is left after ``grace``."""
    alive = [p for p in procs if p.poll() is None]
    for p in alive:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(p.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    for p in alive:
        with contextlib.suppress(subprocess.TimeoutExpired):
            p.wait(timeout=max(0.0, deadline - time.monotonic()))
    for p in procs:
        if p.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, signal.SIGKILL)
            p.wait()


def _log_dir(log_dir: str | os.PathLike | None) -> Path:
    logs = Path(log_dir) if log_dir is not None else Path(tempfile.mkdtemp(
        prefix=f"rnnzoo-launch-{datetime.datetime.now().strftime('%Y%m%d-%H%M%S')}-"))
    logs.mkdir(parents=True, exist_ok=True)
    return logs


@dataclasses.dataclass
class _Workers:
    """The worker processes of one launch, their log files and output pumps."""

    procs: list[subprocess.Popen] = dataclasses.field(default_factory=list)
    pumps: list[threading.Thread] = dataclasses.field(default_factory=list)
    files: list[IO[str]] = dataclasses.field(default_factory=list)

    def start(self, cmd: list[str], addresses: list[str], logs: Path,
              env: dict[str, str] | None, echo: bool, lock: threading.Lock) -> None:
        for i in range(len(addresses)):
            worker_env = dict(os.environ if env is None else env)
            worker_env["TF_CONFIG"] = tf_config(addresses, i)
            worker_env.setdefault("PYTHONUNBUFFERED", "1")
            log = open(logs / f"worker-{i}.log", "w", encoding="utf-8")  # noqa: SIM115
            self.files.append(log)
            proc = subprocess.Popen(cmd, env=worker_env, stdin=subprocess.DEVNULL,
                                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                    start_new_session=True)
            self.procs.append(proc)
            assert proc.stdout is not None
            thread = threading.Thread(target=_pump, args=(proc.stdout, i, log, echo, lock),
                                      daemon=True)
            thread.start()
            self.pumps.append(thread)
        (logs / "workers.json").write_text(json.dumps({
            "command": cmd,
            "workers": [{"index": i, "address": a, "pid": p.pid,
                         "log": str(logs / f"worker-{i}.log")}
                        for i, (a, p) in enumerate(zip(addresses, self.procs))],
        }, indent=2))

    def wait(self, timeout: float | None) -> tuple[int, str]:
        """(exit status, reason): all exited 0, one failed, or the timeout passed."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            codes = [p.poll() for p in self.procs]
            failed = [(i, c) for i, c in enumerate(codes) if c not in (None, 0)]
            if failed:
                i, code = failed[0]
                status = _exit_status(code)
                return status, f"worker {i} failed with exit status {status}; stopping the others"
            if all(c == 0 for c in codes):
                return 0, "all workers finished"
            if deadline is not None and time.monotonic() > deadline:
                return EXIT_TIMEOUT, f"timeout after {timeout:g}s; stopping workers"
            time.sleep(0.1)

    def stop(self, grace: float) -> list[int | None]:
        _stop(self.procs, grace)
        for thread in self.pumps:
            thread.join(timeout=5)
        for log in self.files:
            log.close()
        return [None if p.returncode is None else _exit_status(p.returncode)
                for p in self.procs]


def launch(
    command: Sequence[str],
    workers: int = 2,
    *,
    port_base: int | None = None,
    host: str = "127.0.0.1",
    log_dir: str | os.PathLike | None = None,
    timeout: float | None = None,
    env: dict[str, str] | None = None,
    echo: bool = True,
    grace: float = 5.0,
) -> LaunchResult:
    """Run ``command`` as ``workers`` processes of one TF_CONFIG cluster on ``host``.

    Ports are ``port_base .. port_base + workers - 1`` or free ones. Logs go to
    ``log_dir/worker-<i>.log`` (default: a new temporary directory) and, prefixed, to stdout
    when ``echo``; ``log_dir/workers.json`` lists pids, addresses and the command. Returns when
    all workers exit 0, one fails (the others are stopped), the timeout passes or the launcher
    is interrupted (Ctrl-C, SIGTERM): workers never outlive it.
    """
    if workers < 1:
        raise ConfigError(f"--workers: expected at least 1, found {workers}")
    if timeout is not None and timeout <= 0:
        raise ConfigError(f"--timeout: expected a positive number of seconds, found {timeout}")
    cmd = _resolve_command(command)
    if port_base is not None:
        ports = list(range(port_base, port_base + workers))
        _check_ports_free(ports, host)
    else:
        ports = free_ports(workers, host)
    addresses = [f"{host}:{p}" for p in ports]
    logs = _log_dir(log_dir)
    lock = threading.Lock()

    def say(msg: str) -> None:
        if echo:
            with lock:
                print(f"[launch] {msg}", flush=True)

    previous_handler = None
    in_main = threading.current_thread() is threading.main_thread()
    if in_main:
        def on_term(signum: int, frame: Any) -> None:
            raise _Stop()

        previous_handler = signal.signal(signal.SIGTERM, on_term)
    group = _Workers()
    returncode, reason = 0, "all workers finished"
    try:
        group.start(cmd, addresses, logs, env, echo, lock)
        say(f"{workers} worker(s) on {', '.join(addresses)}; logs in {logs}")
        returncode, reason = group.wait(timeout)
    except (KeyboardInterrupt, _Stop):
        returncode, reason = EXIT_INTERRUPTED, "interrupted; stopping workers"
    finally:
        if in_main:
            signal.signal(signal.SIGTERM, previous_handler)
        if returncode != 0:
            say(reason)
        final_codes = group.stop(grace)
    say(f"{reason if returncode == 0 else 'failed'}; exit status per worker: {final_codes}")
    return LaunchResult(returncode, final_codes, logs, reason)


# -- Ray Train (optional extra: pip install "rnnzoo[ray]") ----------------------------------------


def _ray_train_loop(config: dict) -> None:
    """Runs in every Ray worker; Ray has set TF_CONFIG (and TF_USE_LEGACY_KERAS=1, which only
    concerns ``tf.keras``: rnnzoo uses ``import keras``)."""
    import ray.train

    from rnnzoo.training import train

    result = train(config["entry"], config["data"], out=config["out"], strategy="multiworker",
                   verbose=2, **config["overrides"])
    rank = ray.train.get_context().get_world_rank()
    # Ray keeps reported metrics only with a checkpoint: the chief reports its finished run
    # directory, which Ray also copies to its storage_path.
    checkpoint = None
    if rank == 0:
        checkpoint = ray.train.Checkpoint.from_directory(str(result.run_dir))
    ray.train.report({
        "run_dir": str(result.run_dir),
        "epochs_run": result.epochs_run,
        "resumed_after_epoch": result.resumed_from_epoch,
        **{k: v for k, v in result.metrics.items() if isinstance(v, (int, float))},
    }, checkpoint=checkpoint)


def train_with_ray(
    entry: str,
    data: str | os.PathLike,
    out: str | os.PathLike,
    *,
    num_workers: int = 2,
    use_gpu: bool = False,
    max_failures: int = 0,
    storage_path: str | os.PathLike | None = None,
    **overrides: Any,
) -> dict:
    """Train ``entry`` with Ray Train's ``TensorflowTrainer`` as the launcher.

    Ray starts ``num_workers`` workers (on the Ray cluster ``ray.init()`` connects to, or a local
    one), sets their TF_CONFIG, and each runs ``rnnzoo.train(..., strategy="multiworker")``: the
    same loop, patch, backups and chief-only writes as ``rnnzoo launch``. With ``max_failures``
    > 0 Ray restarts a crashed worker group and the run resumes from the chief's backup. ``out``
    must be on storage the chief can reach. Returns the chief's metrics (``epochs_run``,
    ``resumed_after_epoch``, dev ``accuracy``...) and ``checkpoint``, Ray's copy of the run dir.
    """
    try:
        import ray
        from ray.train import FailureConfig, RunConfig, ScalingConfig
        from ray.train.tensorflow import TensorflowTrainer
    except ImportError:
        raise ConfigError(
            'train_with_ray needs Ray Train: pip install "rnnzoo[ray]"') from None
    # Keep a local Ray on this machine (tests, laptops) rather than probing for a cluster.
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    started_ray = not ray.is_initialized()
    if started_ray:
        ray.init(include_dashboard=False)
    out_dir = Path(out).resolve()  # Ray workers run in their own working directory
    trainer = TensorflowTrainer(
        _ray_train_loop,
        train_loop_config={"entry": entry, "data": str(Path(data).resolve()),
                           "out": str(out_dir), "overrides": overrides},
        scaling_config=ScalingConfig(num_workers=num_workers, use_gpu=use_gpu),
        run_config=RunConfig(
            name=f"rnnzoo-{out_dir.name}",
            storage_path=str(Path(storage_path).resolve()) if storage_path else None,
            failure_config=FailureConfig(max_failures=max_failures),
        ),
    )
    try:
        result = trainer.fit()
    finally:
        if started_ray:  # a local Ray we started; a cluster the caller connected to stays
            ray.shutdown()
    if result.error is not None:
        raise DistributedError(f"Ray training failed: {result.error}") from result.error
    checkpoint = result.checkpoint.path if result.checkpoint is not None else None
    return {**(result.metrics or {}), "checkpoint": checkpoint}
