"""The helpers every layer uses to say a failure: what of an exception fits on one line, and the
warning said where no console was given."""

from __future__ import annotations

import pytest

from vlcli.errors import first_line, warn_on_stderr


def test_first_line_quotes_the_first_line_or_nothing() -> None:
    # What callers put in a one-line message; "" lets them fall back on the exception's type.
    assert (
        first_line(ValueError("  bad header\nTraceback (most recent call last):\n  ..."))
        == "bad header"
    )
    assert first_line(OSError("\n\nno such file\n")) == "no such file"
    assert first_line(KeyError()) == "" and first_line(RuntimeError("  \n ")) == ""


def test_a_warning_without_a_console_goes_to_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    warn_on_stderr("downloading it")
    captured = capsys.readouterr()
    assert captured.err == "vlcli: warning: downloading it\n" and captured.out == ""
