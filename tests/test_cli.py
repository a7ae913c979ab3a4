"""The CLI as a user meets it: standard output and standard error checked apart."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from vlcli.cli.app import app

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "sample_media"


def invoke(*args: str, stdin: str | None = None):
    """In-process run with typer's CliRunner; stdout and stderr come back apart."""
    return CliRunner().invoke(app, list(args), input=stdin)


def _run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "vlcli", *args],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )


def test_probe_json_one_line_per_input(clip_landscape, clip_rotated):
    r = _run("probe", str(clip_landscape), str(clip_rotated), "--json")
    assert r.returncode == 0, r.stderr
    rows = [json.loads(line) for line in r.stdout.splitlines()]
    assert [Path(x["path"]).name for x in rows] == [
        Path(clip_landscape).name,
        Path(clip_rotated).name,
    ]
    assert rows[0]["kind"] == "video" and rows[0]["width"] == 320 and rows[0]["height"] == 180
    assert rows[1]["rotation"] in (90, -90, 270)
    assert rows[1]["width"] < rows[1]["height"]  # displayed portrait
    assert r.stderr == ""


def test_probe_table_for_a_person(clip_landscape):
    r = _run("probe", str(clip_landscape))
    assert r.returncode == 0
    assert Path(clip_landscape).name in r.stdout and "320x180" in r.stdout
    assert "\x1b[" not in r.stdout  # no colour codes when stdout is not a terminal


def test_budget_json_keys_and_values(clip_landscape):
    r = _run("budget", str(clip_landscape), "--json")
    assert r.returncode == 0, r.stderr
    (row,) = [json.loads(line) for line in r.stdout.splitlines()]
    for key in (
        "path",
        "kind",
        "frames",
        "frame_indices",
        "frame_times_s",
        "sample_fps",
        "second_per_grid_t",
        "resized_height",
        "resized_width",
        "grid_thw",
        "visual_tokens",
        "temporal_positions",
        "memory",
    ):
        assert key in row
    # 4 s at 25 fps, sampled at 2 fps: 8 frames, linspace(0, 99, 8) rounded
    assert row["frames"] == 8
    assert row["frame_indices"] == [0, 14, 28, 42, 57, 71, 85, 99]
    assert row["frame_times_s"][1] == pytest.approx(14 / 25)
    assert row["second_per_grid_t"] == pytest.approx(2 / row["sample_fps"])
    assert row["grid_thw"][0] == 4 and row["temporal_positions"] == [0, 2, 4, 6]
    assert row["memory"]["weights_bytes"] > 15 * 2**30


def test_budget_human_view_shows_positions(clip_landscape):
    r = _run("budget", str(clip_landscape), "--fps", "1")
    assert r.returncode == 0, r.stderr
    assert "second_per_grid_t" in r.stdout and "position" in r.stdout and "GPU memory" in r.stdout


def test_budget_from_stdin_and_bad_inputs(clip_landscape, not_media, empty_file, tmp_path):
    missing = tmp_path / "nope.mp4"
    stdin = "\n".join([str(clip_landscape), str(not_media), str(missing), str(empty_file)]) + "\n"
    r = _run("budget", "-", "--json", stdin=stdin)
    assert r.returncode == 3
    rows = [json.loads(line) for line in r.stdout.splitlines()]
    assert len(rows) == 4
    assert "visual_tokens" in rows[0]
    assert all("error" in x for x in rows[1:])
    errs = r.stderr.strip().splitlines()
    assert len(errs) == 3 and all(line.startswith("vlcli:") for line in errs)
    assert "Traceback" not in r.stderr
    assert str(missing) in r.stderr


@pytest.mark.parametrize(
    ("args", "status", "message"),
    [
        (["--start", "99"], 3, "outside the video"),
        (["--nframes", "500"], 3, "too few frames"),
        (["--fps", "1", "--nframes", "4"], 2, "exclude each other"),
        (["--start", "soon"], 2, "not a time"),
    ],
)
def test_budget_errors_are_one_line(clip_landscape, args, status, message):
    r = _run("budget", str(clip_landscape), *args)
    assert r.returncode == status, r.stderr
    assert message in r.stderr and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) <= 2  # usage errors may add click's hint line


def test_budget_tall_image_error(tall_image):
    r = _run("budget", str(tall_image), "--json")
    assert r.returncode == 3
    assert "aspect ratio" in json.loads(r.stdout)["error"]


def test_budget_start_accepts_clock_times(clip_landscape):
    r = _run("budget", str(clip_landscape), "--start", "0:01", "--end", "00:00:03", "--json")
    row = json.loads(r.stdout)
    assert row["clip_start_s"] == pytest.approx(1.0) and row["clip_end_s"] == pytest.approx(3.0)


@pytest.mark.parametrize("command", ["probe", "budget"])
def test_probe_and_budget_do_not_import_torch(clip_landscape, command):
    code = (
        f"import sys; from vlcli.cli.app import main; sys.argv=['vlcli',{command!r},"
        + repr(str(clip_landscape))
        + ",'--json'];\n"
        "try:\n main()\nexcept SystemExit as exit: assert not exit.code, exit.code\n"
        "heavy = {'torch', 'transformers', 'torchcodec', 'torchvision'} & set(sys.modules)\n"
        "assert not heavy, heavy\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stderr


def test_an_engine_is_imported_only_when_it_is_used():
    """The registry names each engine as module:class: checking a name imports nothing, and the
    vLLM engine (a server client) comes without torch, which only transformers needs."""
    code = (
        "import sys\n"
        "from vlcli.backends.registry import ENGINES, check_engine_name, engine_class\n"
        "for name in ENGINES: check_engine_name(name)\n"
        "assert not any(m.startswith('vlcli.backends.transformers') for m in sys.modules)\n"
        "assert engine_class('vllm').__name__ == 'ServerBackend'\n"
        "assert 'torch' not in sys.modules, 'heavy import'\n"
        "assert engine_class('transformers').__name__ == 'TransformersBackend'\n"
        "assert 'torch' in sys.modules\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stderr


def test_budget_sample_media_folder():
    r = _run("budget", str(SAMPLES), "--json")
    assert r.returncode == 0, r.stderr
    kinds = sorted(json.loads(line)["kind"] for line in r.stdout.splitlines())
    assert kinds.count("video") >= 3 and kinds.count("image") >= 1


def test_budget_over_many_files_keeps_input_order(clip_landscape, tmp_path):
    """60 files probed concurrently come out one record each, in input order (the speed of this
    is measured by the benchmarks, not asserted here: the machine is shared)."""
    folder = tmp_path / "many"
    folder.mkdir()
    for i in range(60):
        (folder / f"c{i:03d}.mp4").symlink_to(Path(clip_landscape))
    r = _run("budget", str(folder), "--json")
    assert r.returncode == 0
    paths = [json.loads(line)["path"] for line in r.stdout.splitlines()]
    assert paths == [str(folder / f"c{i:03d}.mp4") for i in range(60)]


def test_help_lists_commands():
    r = _run("--help")
    assert r.returncode == 0 and "probe" in r.stdout and "budget" in r.stdout and "ask" in r.stdout


def test_cli_runner_separates_streams(clip_landscape, not_media):
    r = invoke("budget", str(clip_landscape), str(not_media), "--json")
    assert r.exit_code == 3
    assert [json.loads(x).get("error") is None for x in r.stdout.splitlines()] == [True, False]
    assert r.stderr.count("vlcli:") == 1 and Path(not_media).name in r.stderr


def test_cli_runner_probe_missing_file(tmp_path):
    r = invoke("probe", str(tmp_path / "missing.mp4"))
    assert r.exit_code == 3
    assert r.stdout == ""
    assert "missing.mp4" in r.stderr


def test_budget_end_past_the_video_is_clipped_with_a_warning(clip_landscape):
    r = _run("budget", str(clip_landscape), "--end", "99", "--json")
    assert r.returncode == 0
    row = json.loads(r.stdout)
    assert row["end_frame"] == 99 and row["notes"]
    assert "past the end" in r.stderr and r.stderr.startswith("vlcli: warning:")


@pytest.mark.parametrize("json_flag", [["--json"], []])
def test_budget_into_a_reader_that_leaves_early(clip_landscape, tmp_path, json_flag):
    """`vlcli budget ... | head -1`: the reader's leaving is not a failure (status 0, quiet)."""
    folder = tmp_path / "many"
    folder.mkdir()
    for i in range(40):
        (folder / f"c{i:03d}.mp4").symlink_to(Path(clip_landscape))
    proc = subprocess.Popen(
        [sys.executable, "-m", "vlcli", "budget", str(folder), *json_flag],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=ROOT,
    )
    assert proc.stdout is not None and proc.stderr is not None
    assert proc.stdout.readline()
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 0, err
    assert err == ""


@pytest.mark.parametrize("value", ["nan", "inf"])
def test_budget_non_finite_fps_is_a_usage_error(clip_landscape, value):
    r = _run("budget", str(clip_landscape), "--fps", value)
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr and "--fps" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_budget_dtype_is_checked_and_takes_ask_names(clip_landscape):
    bad = _run("budget", str(clip_landscape), "--dtype", "foo")
    assert bad.returncode == 2 and "--dtype" in bad.stderr and bad.stdout == ""
    fp16 = _run("budget", str(clip_landscape), "--dtype", "fp16", "--json")
    assert fp16.returncode == 0, fp16.stderr
    assert json.loads(fp16.stdout)["memory"]["dtype"] == "float16"


def _run_with_a_bug(clip: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    code = (
        "import sys, vlcli.run.budget\n"
        "def broken(*a, **k): raise RuntimeError('boom\\nsecond line')\n"
        "vlcli.run.budget.plan_for = broken\n"
        "from vlcli.cli.app import main\n"
        f"sys.argv = ['vlcli', 'budget', {clip!r}]\n"
        "main()\n"
    )
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, env=env
    )


def test_a_bug_is_one_line_and_status_1(clip_landscape):
    import os

    env = {k: v for k, v in os.environ.items() if k != "VLCLI_DEBUG"}
    r = _run_with_a_bug(str(clip_landscape), env)
    assert r.returncode == 1
    (line,) = r.stderr.strip().splitlines()
    # the bug is reported against the input it was met on; other inputs would still run
    assert (
        line.startswith(f"vlcli: {clip_landscape}: unexpected error (RuntimeError: boom)")
        and "report" in line
    )
    debug = _run_with_a_bug(str(clip_landscape), {**env, "VLCLI_DEBUG": "1"})
    assert debug.returncode == 1 and "Traceback" in debug.stderr
