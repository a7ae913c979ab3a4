"""parse_times against answers real models wrote (``../shared/answers/real_answers.jsonl``).

Each line of the file holds an answer of a real model (Qwen2-VL, Qwen2.5-VL, Qwen3-VL and
fine-tunes of them, Gemini, VTimeLLM, TimeChat, VTG-LLM) and the spans a careful reader finds in
it (see ``../shared/answers/README.md``). One test per line checks the times ``parse_times``
finds, in order, and that no span's text is raw JSON, a leftover tag or Markdown emphasis. Lines
that cannot be read right from the text alone are listed in ``KNOWN_FAILURES`` with the reason
(strict xfail: a line that starts passing must leave the list). The tests are skipped where the
file is absent (it lives beside the clone, not in it).

``python tests/test_real_answers.py`` prints the result of every line and the score.
"""

from __future__ import annotations

import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from vlcli.times.parse import TimeSpan, parse_times

_RELATIVE = Path("shared") / "answers" / "real_answers.jsonl"
# <clone>/../shared (CI, and a checkout beside shared/); /work/shared (a worktree elsewhere).
CANDIDATES = (Path(__file__).resolve().parents[2] / _RELATIVE, Path("/work") / _RELATIVE)

KNOWN_FAILURES = {
    "gemini_json_timecode_mm_ss_ff": (
        'Gemini writes "00:11:00" for 11 s (MM:SS:FF). Without the clip\'s length a three-part '
        "clock is hh:mm:ss (11 min), and the file does not record the clip's length; vlcli ask "
        "passes it (parse_times(clip_duration_s=...)), and that reading is tested in test_times."
    ),
}

# A span's text that still holds JSON ("key": value), a tag, or emphasis markers.
_JSON_PAIR = re.compile(r"""["']\s*:\s*["'\d\[{]""")
_LEFTOVER = re.compile(r"<\|[^|>]*\|>|</?(?:answer|think)>|\*\*|__")


def answers_path() -> Path | None:
    return next((p for p in CANDIDATES if p.is_file()), None)


def load_rows() -> list[dict[str, Any]]:
    path = answers_path()
    if path is None:
        return []
    lines = path.read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


@dataclass(frozen=True)
class LineResult:
    id: str
    times_right: bool
    bad_texts: tuple[str, ...]
    got: tuple[tuple[float, float], ...]
    expected: tuple[tuple[float, float], ...]

    @property
    def right(self) -> bool:
        return self.times_right and not self.bad_texts


def check(row: dict[str, Any]) -> LineResult:
    """Read one answer as ``vlcli ask`` would (grounding answers assume seconds)."""
    spans: list[TimeSpan] = parse_times(row["text"], assume_seconds=bool(row["grounding_prompt"]))
    got = tuple((s.start_s, s.end_s) for s in spans)
    expected = tuple((float(a), float(b)) for a, b in row["expected"])
    times_right = len(got) == len(expected) and all(
        abs(g0 - e0) < 1e-6 and abs(g1 - e1) < 1e-6
        for (g0, g1), (e0, e1) in zip(got, expected, strict=True)
    )
    bad = tuple(s.text for s in spans if _JSON_PAIR.search(s.text) or _LEFTOVER.search(s.text))
    return LineResult(row["id"], times_right, bad, got, expected)


ROWS = load_rows()


def _params() -> list[Any]:
    if not ROWS:
        reason = f"no real answers file ({' or '.join(str(p) for p in CANDIDATES)})"
        return [pytest.param(None, id="absent", marks=pytest.mark.skip(reason=reason))]
    return [
        pytest.param(
            row,
            id=row["id"],
            marks=(
                [pytest.mark.xfail(reason=KNOWN_FAILURES[row["id"]], strict=True)]
                if row["id"] in KNOWN_FAILURES
                else []
            ),
        )
        for row in ROWS
    ]


@pytest.mark.parametrize("row", _params())
def test_real_answer(row: dict[str, Any]) -> None:
    result = check(row)
    assert result.times_right, (
        f"{row['id']}: got {list(result.got)}, expected {list(result.expected)} ({row['notes']})"
    )
    assert not result.bad_texts, f"{row['id']}: span texts not cleaned: {result.bad_texts[:3]}"


def test_known_failures_name_lines_of_the_file() -> None:
    if not ROWS:
        pytest.skip("no real answers file")
    assert set(KNOWN_FAILURES) <= {row["id"] for row in ROWS}


def main() -> int:
    """Print each line's result and the score; the status is 1 if an unlisted line fails."""
    if not ROWS:
        print("no real answers file", file=sys.stderr)
        return 0
    unexpected = 0
    results = [check(row) for row in ROWS]
    for r in results:
        known = r.id in KNOWN_FAILURES
        mark = "ok  " if r.right else "KNOWN" if known else "FAIL"
        unexpected += not r.right and not known
        print(f"{mark}  {r.id}  ({len(r.got)} spans found, {len(r.expected)} expected)")
        if not r.right:
            if not r.times_right:
                print(f"      got      {list(r.got)[:8]}")
                print(f"      expected {list(r.expected)[:8]}")
            for text in r.bad_texts[:3]:
                print(f"      text     {text[:100]!r}")
    right = sum(r.right for r in results)
    print(f"{right}/{len(results)} answers read right ({len(KNOWN_FAILURES)} known failures)")
    return 1 if unexpected else 0


if __name__ == "__main__":
    raise SystemExit(main())
