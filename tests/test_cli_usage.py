"""What a user meets at the command line: parser mistakes, help, version, output that cannot be
written, terminals without colour, and names and answers that are not plain text.

Every run here is a real subprocess (``python -m vlcli``), so that the whole entry point
(:func:`vlcli.cli.app.main`) is what is tested, with stdout and stderr apart.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from vlcli import __version__
from vlcli.cli.views import tsv_cell, visible
from vlcli.errors import one_line
from vlcli.outputs.text import json_text

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "sample_media"
CLIP = str(SAMPLES / "landscape.mp4")


def run(*args: str, env: dict[str, str] | None = None, **kwargs) -> subprocess.CompletedProcess:  # type: ignore[no-untyped-def, type-arg]
    if "stdin" not in kwargs and "input" not in kwargs:
        kwargs["stdin"] = subprocess.DEVNULL
    return subprocess.run(
        [sys.executable, "-m", "vlcli", *args],
        capture_output=True,
        cwd=kwargs.pop("cwd", ROOT),
        timeout=120,
        env={**os.environ, **(env or {})},
        **kwargs,
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["budget"], "Missing argument 'MEDIA...'. Try 'vlcli budget -h' for help."),
        (["ask"], "Missing argument 'MEDIA... QUESTION'. Try 'vlcli ask -h' for help."),
        (["probe"], "Missing argument 'MEDIA...'."),
        (["budget", CLIP, "--bogus"], "No such option: --bogus. Try 'vlcli budget -h' for help."),
        (["budget", CLIP, "--fps", "abc"], "Invalid value for '--fps'"),
        (["ask", CLIP, "q?", "--max-new-tokens", "0"], "Invalid value for '--max-new-tokens'"),
        (["ask", CLIP, "q?", "--temperature", "-1"], "Invalid value for '--temperature'"),
        (["nosuch"], "No such command 'nosuch'. Try 'vlcli -h' for help."),
        (["budget", CLIP, "--nframes", "1"], "--nframes 1 rounds to 0"),
        (["budget", CLIP, "--max-frames", "1"], "--max-frames 1 rounds to 0"),
        (["ask", CLIP, "q?", "--max-frames", "1"], "--max-frames 1 rounds to 0"),
        (["budget", CLIP, "--min-frames", "100", "--max-frames", "10"], "--max-frames 10 is below"),
        (["budget", CLIP, "--max-pixels", "700"], "--max-pixels 700 is less than one visual token"),
    ],
)
def test_usage_mistakes_are_one_line_and_status_2(args: list[str], message: str) -> None:
    r = run(*args)
    err = r.stderr.decode()
    assert r.returncode == 2, err
    assert err.count("\n") == 1 and err.startswith("vlcli: ") and message in err
    assert "bug" not in err and "Traceback" not in err and r.stdout == b""


def test_plain_vlcli_shows_the_help_with_status_2() -> None:
    r = run()
    assert r.returncode == 2
    assert b"Usage: vlcli [OPTIONS] COMMAND" in r.stdout + r.stderr and b"bug" not in r.stderr


def test_a_file_named_like_an_option_gets_a_hint(tmp_path: Path) -> None:
    (tmp_path / "-x.mp4").write_bytes(Path(CLIP).read_bytes())
    r = run("budget", "-x.mp4", cwd=tmp_path)
    assert r.returncode == 2
    assert b"write ./-x.mp4, or put -- before it" in r.stderr
    ok = run("budget", "--json", "--", "-x.mp4", cwd=tmp_path)
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["path"] == "-x.mp4"


def test_help_and_version() -> None:
    short, long = run("budget", "-h"), run("budget", "--help")
    assert short.returncode == long.returncode == 0 and short.stdout == long.stdout
    text = short.stdout.decode()
    assert "Usage: vlcli budget [OPTIONS] MEDIA..." in text
    for label in ("<bool>", "<str>", "<list[str]>", "{media}", "<float>", "<int>"):
        assert label not in text, label
    assert "--fps" in text and "FPS" in text and "PIXELS" in text
    ask = run("ask", "-h").stdout.decode()
    assert "Usage: vlcli ask [OPTIONS] MEDIA... QUESTION" in ask and "<bool>" not in ask
    version = run("--version")
    assert version.returncode == 0 and version.stdout.decode().strip() == f"vlcli {__version__}"


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
def test_a_full_disk_is_said_so() -> None:
    with open("/dev/full", "w") as full:
        r = subprocess.run(
            [sys.executable, "-m", "vlcli", "budget", CLIP, "--json"],
            stdout=full,
            stderr=subprocess.PIPE,
            cwd=ROOT,
            timeout=120,
        )
    assert r.returncode == 1
    assert r.stderr.decode() == "vlcli: cannot write to standard output: No space left on device\n"


def test_no_color_and_dumb_terminals_get_no_escapes() -> None:
    """Forced terminal output (as on a tty) carries styles; NO_COLOR and TERM=dumb none."""
    styled = run("budget", CLIP, env={"FORCE_COLOR": "1", "TTY_COMPATIBLE": "1"})
    assert b"\x1b[" in styled.stdout  # the check below could fail
    for env in ({"NO_COLOR": "1"}, {"TERM": "dumb"}):
        r = run("budget", CLIP, "--nframes", "1", env={"FORCE_COLOR": "1", **env})
        assert b"\x1b" not in r.stderr and r.returncode == 2
        r = run("budget", CLIP, env={"FORCE_COLOR": "1", "TTY_COMPATIBLE": "1", **env})
        assert b"\x1b" not in r.stdout and b"\x1b" not in r.stderr, env


def test_budget_for_a_pipe_has_no_box_lines_or_trailing_spaces() -> None:
    r = run("budget", CLIP)
    text = r.stdout.decode()
    assert r.returncode == 0 and "patch" in text and "position t" in text
    assert not any(ch in text for ch in "─━│┃┏┓┗┛╭╮╰╯")
    assert all(line == line.rstrip() for line in text.splitlines())


def test_names_with_newlines_and_undecodable_bytes(tmp_path: Path) -> None:
    data = Path(CLIP).read_bytes()
    newline = tmp_path / "two\nlines.mp4"
    newline.write_bytes(data)
    raw = os.fsencode(tmp_path) + b"/caf\xe9.mp4"  # Latin-1, not UTF-8
    with open(raw, "wb") as fh:
        fh.write(data)
    r = run("probe", str(tmp_path))
    assert r.returncode == 0, r.stderr
    lines = r.stdout.split(b"\n")
    assert len(lines) == 4 and lines[-1] == b""  # header, two rows: one line per input
    assert b"two\\nlines.mp4\t" in r.stdout and b"caf\xe9.mp4\t" in r.stdout
    j = run("probe", str(tmp_path), "--json")
    rows = [json.loads(line) for line in j.stdout.decode("utf-8").splitlines()]
    names = sorted(os.fsencode(row["path"]) for row in rows)
    assert names == sorted([raw, os.fsencode(newline)])  # lossless


def test_render_escapes() -> None:
    assert visible("a\x1b[31mred\x07\tok\n") == "a\\x1b[31mred\\x07\tok\n"
    assert tsv_cell("a\tb\nc\\d\r") == "a\\tb\\nc\\\\d\\r"
    assert json_text({"p": "caf\udce9"}) == '{"p": "caf\\udce9"}'
    assert json.loads(json_text({"p": "caf\udce9"}))["p"] == "caf\udce9"


def test_the_timing_line_keeps_prefill_and_decoding_apart() -> None:
    from vlcli.cli.views import timing_summary

    line = timing_summary(
        3611,
        40,
        {
            "decode_s": 0.3,
            "preprocess_s": 0.12,
            "prefill_s": 1.3,
            "decode_tokens_s": 2.0,
            "generate_s": 3.3,
        },
    )
    assert line == (
        "3611 prompt tokens, 40 generated: frames 0.42s, prefill 1.30s (to the first token), "
        "39 more tokens 2.00s (19.5/s), total 3.72s"
    )


@pytest.mark.parametrize("command", [["probe"], ["budget"], ["ask", "q?"]])
def test_a_folder_without_media_is_an_input_failure(tmp_path: Path, command: list[str]) -> None:
    """Not a usage mistake (the command line is right; the folder holds no media): status 3,
    one line naming the folders that were searched."""
    empty, notes = tmp_path / "empty", tmp_path / "notes"
    empty.mkdir()
    notes.mkdir()
    (notes / "readme.txt").write_text("no video here")
    media = [str(empty), str(notes)]
    args = [command[0], *media, *command[1:]]
    r = run(*args)
    err = r.stderr.decode()
    assert r.returncode == 3, err
    assert err == f"vlcli: no media found under {empty}, {notes}\n" and r.stdout == b""


def test_paths_separated_by_nul(tmp_path: Path) -> None:
    """find -print0 | vlcli budget - --null: any file name, newlines included."""
    odd = tmp_path / "a\nb.mp4"
    odd.write_bytes(Path(CLIP).read_bytes())
    listing = f"{odd}\0{CLIP}\0".encode()
    r = subprocess.run(
        [sys.executable, "-m", "vlcli", "budget", "-", "-0", "--json"],
        input=listing,
        capture_output=True,
        cwd=ROOT,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    assert [json.loads(x)["path"] for x in r.stdout.splitlines()] == [str(odd), CLIP]


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_pipes_and_devices_are_not_files(tmp_path: Path) -> None:
    """A FIFO is refused without being opened (opening it would wait for a writer for ever)."""
    fifo = tmp_path / "clip.mp4"
    os.mkfifo(fifo)
    r = run("probe", str(fifo), "/dev/zero", "/dev/stdin", CLIP, stdin=subprocess.PIPE)
    lines = r.stderr.decode().splitlines()
    assert r.returncode == 3 and len(lines) == 3, lines
    assert "not a regular file (a pipe)" in lines[0] and str(fifo) in lines[0]
    assert "/dev/zero: not a regular file (a device)" in lines[1]
    assert "/dev/stdin: not a regular file (a pipe)" in lines[2]
    assert r.stdout.count(b"\n") == 2  # the header and the one real clip


def _without_root_powers() -> list[str]:
    """Run as this user but subject to file permissions: root keeps its uid and loses the
    capabilities that let it read anything (setpriv, util-linux)."""
    if os.geteuid() != 0:
        return []
    import shutil

    if shutil.which("setpriv") is None:
        pytest.skip("running as root without setpriv: file permissions cannot be tested")
    return ["setpriv", "--bounding-set=-dac_override,-dac_read_search", "--"]


def test_unreadable_folders_and_files_say_permission_denied(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    (locked / "a.mp4").write_bytes(Path(CLIP).read_bytes())
    unreadable = tmp_path / "open" / "secret.mp4"
    unreadable.parent.mkdir()
    unreadable.write_bytes(Path(CLIP).read_bytes())
    (tmp_path / "open" / "fine.mp4").write_bytes(Path(CLIP).read_bytes())
    locked.chmod(0)
    unreadable.chmod(0)
    try:
        r = subprocess.run(
            [*_without_root_powers(), sys.executable, "-m", "vlcli", "probe", "--json"]
            + [str(locked), str(locked / "a.mp4"), str(tmp_path / "open")],
            capture_output=True,
            text=True,
            cwd=ROOT,
            timeout=120,
        )
    finally:
        locked.chmod(0o755)
        unreadable.chmod(0o644)
    rows = {Path(x["path"]).name: x for x in map(json.loads, r.stdout.splitlines())}
    assert r.returncode == 3
    assert "permission denied: this folder cannot be read" in rows["locked"]["error"]
    assert "permission denied" in rows["a.mp4"]["error"]
    assert "permission denied: this file cannot be read" in rows["secret.mp4"]["error"]
    assert "error" not in rows["fine.mp4"]


@pytest.mark.parametrize(
    ("option", "message"),
    [(["--dtype", "int3"], "--dtype 'int3': use auto"), (["--attn", "magic"], "--attn 'magic'")],
)
def test_misnamed_model_options_are_said_before_torch_is_imported(
    option: list[str], message: str, tmp_path: Path
) -> None:
    """The check runs before the model is loaded or torch imported: the model need not exist."""
    code = (
        "import sys, runpy\n"
        "sys.argv = ['vlcli', *sys.argv[1:]]\n"
        "try:\n"
        "    runpy.run_module('vlcli', run_name='__main__')\n"
        "finally:\n"
        "    print('torch' in sys.modules, file=sys.stderr)\n"
    )
    r = subprocess.run(
        [sys.executable, "-c", code, "ask", CLIP, "q?", "--model", str(tmp_path), *option],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    lines = r.stderr.splitlines()
    assert r.returncode == 2 and message in lines[0] and lines[-1] == "False"


def test_error_lines_escape_control_characters_in_names(tmp_path: Path) -> None:
    """A name with a newline or ESC stays one line on stderr and never reaches the terminal raw
    (``ESC[2J`` would clear it): escaped as in probe's table."""
    odd = tmp_path / "two\nlines\x1b[2J.mp4"
    odd.write_bytes(b"not media")
    for args in (["probe", str(odd)], ["budget", str(odd)], ["probe", str(tmp_path)]):
        r = run(*args)
        assert r.returncode == 3
        (line,) = r.stderr.decode().splitlines()
        assert line.endswith(
            "two\\nlines\\x1b[2J.mp4: not media: FFmpeg cannot read it as a video or image"
        )
    assert one_line("a\tb\nc\x1b\x07\r") == "a\\tb\\nc\\x1b\\x07\\r"


@pytest.mark.parametrize(
    "option", [["-o", "out.jsonl"], ["--srt", "sub/out.srt"], ["--evidence", "frames"]]
)
def test_outputs_under_a_folder_that_cannot_be_searched(tmp_path: Path, option: list[str]) -> None:
    """A folder without execute permission: one line naming the path, status 2 (not "a bug")."""
    locked = tmp_path / "locked"
    locked.mkdir()
    target = str(locked / option[1])
    locked.chmod(0o600)
    try:
        r = subprocess.run(
            [*_without_root_powers(), sys.executable, "-m", "vlcli", "ask", CLIP, "What?"]
            + ["--model", str(tmp_path / "no-model"), option[0], target],
            capture_output=True,
            text=True,
            cwd=ROOT,
            timeout=120,
        )
    finally:
        locked.chmod(0o755)
    assert r.returncode == 2, r.stderr
    (line,) = r.stderr.splitlines()
    named = line.removeprefix("vlcli: ").split(": cannot write there")[0]
    assert target.startswith(named) and named.startswith(str(locked / "")), line
    assert line.endswith("(permission denied)")
    assert "bug" not in line


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
@pytest.mark.parametrize("args", [["--help"], ["probe", "--help"], ["--version"]])
def test_help_onto_a_full_disk_is_said_so(args: list[str]) -> None:
    with open("/dev/full", "w") as full:
        r = subprocess.run([sys.executable, "-m", "vlcli", *args], stdout=full,
                           stderr=subprocess.PIPE, cwd=ROOT, timeout=120)  # fmt: skip
    assert r.returncode == 1
    assert r.stderr.decode() == "vlcli: cannot write to standard output: No space left on device\n"


@pytest.mark.parametrize("args", [["probe", CLIP], ["probe", CLIP, "--json"], ["--help"]])
def test_a_closed_standard_output_is_said_so(args: list[str]) -> None:
    """`vlcli probe x >&-`: one line and status 1, not a traceback."""
    r = subprocess.run([sys.executable, "-m", "vlcli", *args], stdout=subprocess.DEVNULL,
                       stderr=subprocess.PIPE, cwd=ROOT, timeout=120,
                       preexec_fn=lambda: os.close(1))  # fmt: skip
    assert r.returncode == 1
    assert r.stderr.decode() == "vlcli: cannot write to standard output: Bad file descriptor\n"


@pytest.mark.parametrize(
    "args",
    [
        ["ask", CLIP, b"When does it \xfe move?"],
        ["ask", CLIP, "When?", "--system", b"Be \xff brief."],
        ["budget", CLIP, "--question", b"When \xfe?"],
    ],
)
def test_text_that_is_not_utf8_is_a_usage_error(args: list[str | bytes]) -> None:
    """A question or system prompt with bytes that are not UTF-8 cannot be tokenized: one line,
    status 2, before any model is looked for (it was "a bug": the tokenizer's TypeError)."""
    r = subprocess.run(
        [sys.executable, "-m", "vlcli", *args, "--model", "/nonexistent/model"],
        capture_output=True, cwd=ROOT, timeout=120, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    lines = r.stderr.decode("utf-8", "replace").splitlines()
    assert r.returncode == 2, lines
    (line,) = [x for x in lines if x.startswith("vlcli:")]
    assert "not valid UTF-8" in line and ("\\xfe" in line or "\\xff" in line)
