"""Many questions, one preparation (issue 17): what ``ask -q ... -q ...`` saves, on the CPU with
the tiny test model.

Not collected by the test run. Two measurements, each run in one process after the imports:

``--ttft``: one clip (default 60 s, 1920x1080, 30 fps, H.264, made once under
.bench/questions/) asked ``--questions`` questions in one :func:`vlcli.run.ask.run_ask`. A
record's time to its first token is its ``decode_s + preprocess_s + prefill_s``: question 1 pays
the decoding, the vision tower and the media's prefill; the later ones only their own tokens.
Reported: question 1's, the mean of the later ones', and their ratio (the goal: at most 5%).

``--folder``: ``--clips`` short clips (default 20; 640x360, 25 fps, 10 s) with ``--questions``
questions each: records per minute of one run with all the questions against one run per
question over the folder (the goal: at least 5x). The model is loaded once per run in both.

``--smoke`` makes everything small (a 3 s 320x240 clip, 2 clips, 2 questions): a check that the
script runs, not a figure. Prints a table and one JSON line with every figure.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / ".bench" / "questions"
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "tests" / "benchmarks"))

QUESTIONS = [
    "What happens?", "What colours are shown?", "Is there any text?", "How many objects move?",
    "What is in the top left corner?", "Does the picture change?", "Is there a person?",
    "What shapes are there?", "Is it day or night?", "What is in the centre?",
]  # fmt: skip


def _model() -> Path:
    from tinymodels import save_tiny_model

    model = BENCH / "tiny-Qwen2.5-VL"
    if not (model / "config.json").exists():
        save_tiny_model("qwen2_5_vl", model)
    return model


def _clip(name: str, size: tuple[int, int], fps: int, seconds: int) -> str:
    from helpers_media import make_clip

    path = BENCH / name
    if not path.exists():
        make_clip(path, size=size, fps=fps, seconds=seconds)
    return str(path)


def _run(
    paths: list[str], questions: list[str], new_tokens: int, fps: float | None = None
) -> tuple[list[dict], float]:
    """One run of ``ask`` over ``paths`` with ``questions``: its records (every one answered)
    and wall seconds."""
    from bench_batch import Quiet

    from vlcli.backends.transformers.backend import TransformersBackend
    from vlcli.planning.plan import SamplingOptions
    from vlcli.run.ask import RunOptions, run_ask
    from vlcli.run.prompt import AskSettings, Generation

    started = time.perf_counter()
    backend = TransformersBackend(
        str(_model()), device="cpu", dtype="float32", warn=lambda m: None, load=False
    )
    view = Quiet()
    sampling = SamplingOptions(fps=fps)
    asked = [AskSettings(q, sampling=sampling, generation=Generation(new_tokens)) for q in questions]
    run_ask(backend, paths, [Path(p).stem for p in paths], asked, RunOptions(), view)
    failed = [r.get("error") for r in view.records if r.get("status") != "ok"]
    if failed:
        raise SystemExit(f"{len(failed)} records failed, the first: {failed[0]}")
    return view.records, time.perf_counter() - started


def ttft(args: argparse.Namespace) -> dict:
    size, seconds = ((320, 240), 3) if args.smoke else ((1920, 1080), 60)
    clip = _clip(f"clip_{size[0]}x{size[1]}_{seconds}s.mp4", size, 30, seconds)
    # the tiny model reads 32,768 tokens: the clip's 60 s at the default 2 fps are 43,228
    records, _ = _run([clip], QUESTIONS[: args.questions], args.new_tokens, args.fps)
    firsts = [
        sum(r["timings"][k] for k in ("decode_s", "preprocess_s", "prefill_s")) for r in records
    ]
    later = statistics.mean(firsts[1:])
    return {"clip": f"{size[0]}x{size[1]}, {seconds} s, fps {args.fps}", "questions": len(firsts),
            "first_s": round(firsts[0], 3), "later_mean_s": round(later, 3),
            "later_over_first": round(later / firsts[0], 4)}  # fmt: skip


def folder(args: argparse.Namespace) -> dict:
    clips = 2 if args.smoke else args.clips
    size = (320, 240) if args.smoke else (640, 360)
    paths = [_clip(f"short{n:02d}.mp4", size, 25, 3 if args.smoke else 10) for n in range(clips)]
    questions = QUESTIONS[: args.questions]
    records, together = _run(paths, questions, args.new_tokens)
    apart = sum(_run(paths, [q], args.new_tokens)[1] for q in questions)
    return {"clips": clips, "questions": len(questions), "records": len(records),
            "together_s": round(together, 2), "apart_s": round(apart, 2),
            "together_per_min": round(len(records) / together * 60, 1),
            "apart_per_min": round(len(records) / apart * 60, 1),
            "speedup": round(apart / together, 2)}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ttft", action="store_true")
    parser.add_argument("--folder", action="store_true")
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--clips", type=int, default=20)
    parser.add_argument("--questions", type=int, default=10)
    parser.add_argument("--new-tokens", type=int, default=8)
    parser.add_argument("--fps", type=float, default=1.0, help="sampling of --ttft's clip")
    args = parser.parse_args()
    if args.smoke:
        args.questions = min(args.questions, 2)
    BENCH.mkdir(parents=True, exist_ok=True)
    figures = {}
    if args.ttft or not args.folder:
        figures["ttft"] = ttft(args)
    if args.folder or not args.ttft:
        figures["folder"] = folder(args)
    for name, values in figures.items():
        print(name, ", ".join(f"{k} {v}" for k, v in values.items()))
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
