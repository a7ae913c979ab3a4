"""Signals over the whole life of ``vlcli``: while torch and transformers import, and after.

Each run is a real ``python -m vlcli ask`` whose import of one module pauses (an import hook
in the driver below says ``PAUSED`` and sleeps inside that import), so that the signal is
sent, deterministically, while that module is being imported.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

pytest_plugins = ("conftest_models",)

ROOT = Path(__file__).resolve().parents[1]
CLIP = str(ROOT / "sample_media" / "landscape.mp4")

DRIVER = """
import importlib.abc, importlib.util, os, runpy, sys, time

class PauseInside(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name != os.environ["PAUSE_IN"]:
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        real = spec.loader.exec_module

        def exec_module(module):
            os.write(2, b"PAUSED\\n")
            time.sleep(3)
            real(module)

        spec.loader.exec_module = exec_module
        return spec

sys.meta_path.insert(0, PauseInside())
sys.argv[0] = "vlcli"
runpy.run_module("vlcli", run_name="__main__")
"""


@pytest.mark.parametrize(
    ("module", "sig"),
    [
        ("vlcli.planning.plan", signal.SIGINT),  # `import vlcli` imported it before the entry ran
        ("typer", signal.SIGINT),  # the command line's own modules
        ("numpy", signal.SIGINT),  # inside torch's import: torch swallowed it, the run went on
        ("numpy", signal.SIGHUP),
        ("torch", signal.SIGTERM),
        ("transformers", signal.SIGINT),  # the model loads inside the run
        ("transformers", signal.SIGHUP),
    ],
)
def test_a_signal_while_modules_import_is_one_line_and_128_plus_it(
    tiny_qwen25_path: Path, tmp_path: Path, module: str, sig: int
) -> None:
    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER)
    proc = subprocess.Popen(
        [sys.executable, str(driver), "ask", CLIP, "What?", "--model", str(tiny_qwen25_path),
         "--nframes", "2", "--max-new-tokens", "4"],  # fmt: skip
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PAUSE_IN": module},
    )
    assert proc.stderr is not None
    seen = []
    while not seen or seen[-1] != "PAUSED\n":
        seen.append(proc.stderr.readline())
        assert seen[-1], f"{module} was never imported: {proc.communicate()}"
    proc.send_signal(sig)
    stdout, stderr = proc.communicate(timeout=300)
    said = [x for x in stderr.splitlines() if x.strip() and "no CUDA GPU" not in x]
    assert proc.returncode == 128 + sig, stderr
    assert len(said) == 1 and said[0].startswith("vlcli: interrupted"), stderr
    assert stdout == ""


def test_ignored_signals_stay_ignored() -> None:
    """`nohup vlcli ...` ignores SIGHUP, a background job of a script SIGINT: vlcli keeps that."""
    code = (
        "import signal\n"
        "signal.signal(signal.SIGHUP, signal.SIG_IGN)\n"
        "from vlcli.run import signals\n"
        "signals.install()\n"
        "print(signal.getsignal(signal.SIGHUP) is signal.SIG_IGN,"
        " callable(signal.getsignal(signal.SIGINT)), callable(signal.getsignal(signal.SIGTERM)))\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert r.stdout.split() == ["True", "True", "True"], r.stderr


def test_the_entry_handles_signals_before_anything_heavy_is_imported() -> None:
    """What runs before the handlers are installed is the interpreter's start and a few light
    modules: not the API's (``import vlcli`` imports them on first use), typer, rich or numpy."""
    code = (
        "import sys\n"
        "import vlcli.cli.entry\n"
        "heavy = ('vlcli.times.parse', 'vlcli.planning.plan', 'typer', 'rich', 'numpy', 'torch')\n"
        "print([m for m in heavy if m in sys.modules])\n"
        "import vlcli\n"
        "print(sorted(vlcli.__all__) == sorted(n for n in vlcli.__all__ if getattr(vlcli, n, None) is not None))\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert r.stdout.splitlines() == ["[]", "True"], r.stderr
