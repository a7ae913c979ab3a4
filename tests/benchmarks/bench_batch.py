"""Long runs of ``vlcli ask``: records per minute with and without decoding ahead; resuming.

Not collected by the test run. Two measurements (run on the CPU with the tiny test model):

``--throughput`` (default): a folder of 20 clips (``--clips``; 640x360, 25 fps, 10 s, H.264,
made once under .bench/batch/) answered by :func:`vlcli.run.ask.run_ask` with the real
TransformersBackend and ``--max-new-tokens`` tokens, once preparing the next input on the worker
while the model answers (``ahead``) and once with nothing prepared ahead (``serial``: the same
threads, the worker decoding an input only once the one before is answered), each in a fresh
process, alternating, ``--repeat`` times. Reported: the wall seconds of the run (model loading
included, imports not), records per minute, and the sum of the answers' decode, preprocess and
generate seconds.

``--resume``: an output file of 10,000 finished records (``--records``; each about 2.5 kB, as a
real record) over 10,000 inputs, and one more input not yet done. Timed, in one process after the
imports, from the start to the moment the new input's preparation starts: listing the folder
(``expand_inputs``), naming the outputs, checking the targets, and ``run_ask`` opening and
indexing the file, keying and skipping the 10,000 (the model is loaded while the new input is
prepared, so it is not counted). The 10,000 inputs are hard links to one small clip.

Prints a table and one JSON line with every figure.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / ".bench" / "batch"
sys.path.insert(0, str(ROOT / "tests"))


def setup(clips: int) -> tuple[Path, Path]:
    from helpers_media import make_clip
    from tinymodels import save_tiny_model

    model = BENCH / "tiny-Qwen2.5-VL"
    if not (model / "config.json").exists():
        save_tiny_model("qwen2_5_vl", model)
    folder = BENCH / f"clips{clips}"
    for n in range(clips):
        path = folder / f"clip{n:02d}.mp4"
        if not path.exists():
            make_clip(path, size=(640, 360), fps=25, seconds=10)
    return model, folder


class Quiet:
    """A view that shows nothing (the figures are the benchmark's)."""

    def __init__(self) -> None:
        self.records: list[dict] = []

    def begin(self, total, done): ...  # type: ignore[no-untyped-def]
    def stage(self, label, stage): ...  # type: ignore[no-untyped-def]
    def decoding(self, label, done, total): ...  # type: ignore[no-untyped-def]
    def start(self, paths, title, several):  # type: ignore[no-untyped-def]
        return None

    def window_answered(self, label, seconds): ...  # type: ignore[no-untyped-def]
    def result(self, record, result):  # type: ignore[no-untyped-def]
        self.records.append(record)

    def failure(self, paths, exc, record):  # type: ignore[no-untyped-def]
        self.records.append(record)

    def finished(self, label, status, seconds): ...  # type: ignore[no-untyped-def]
    def info(self, message): ...  # type: ignore[no-untyped-def]
    def warn(self, message): ...  # type: ignore[no-untyped-def]
    def close(self): ...  # type: ignore[no-untyped-def]


def one_run(mode: str, model: Path, folder: Path, new_tokens: int) -> dict:
    """In this process: one whole run over the folder; its figures."""
    from vlcli.backends.transformers.backend import TransformersBackend
    from vlcli.media.probe import expand_inputs
    from vlcli.run.ask import RunOptions, run_ask
    from vlcli.run.prompt import AskSettings, Generation

    paths = expand_inputs([str(folder)])
    started = time.perf_counter()
    backend = TransformersBackend(
        str(model), device="cpu", dtype="float32", warn=lambda m: None, load=False
    )
    view = Quiet()
    asked = [AskSettings("What happens?", generation=Generation(new_tokens))]
    run_ask(
        backend, paths, [Path(p).stem for p in paths], asked,
        RunOptions(ahead=(mode == "ahead")), view,
    )  # fmt: skip
    wall = time.perf_counter() - started
    ok = [r for r in view.records if r["status"] == "ok"]
    sums = {
        k: round(sum(r["timings"][k] for r in ok), 2)
        for k in ("decode_s", "preprocess_s", "generate_s")
    }
    return {"mode": mode, "records": len(ok), "wall_s": round(wall, 2),
            "records_per_min": round(len(ok) / wall * 60, 1), **sums}  # fmt: skip


def throughput(args: argparse.Namespace) -> list[dict]:
    model, folder = setup(args.clips)
    runs = []
    for _ in range(args.repeat):
        for mode in ("ahead", "serial"):
            done = subprocess.run(
                [sys.executable, __file__, "--one", mode, "--new-tokens", str(args.new_tokens),
                 "--clips", str(args.clips)],
                capture_output=True, text=True, check=True, cwd=ROOT,
            )  # fmt: skip
            runs.append(json.loads(done.stdout.strip().splitlines()[-1]))
            print(runs[-1], file=sys.stderr)
    return runs


def resume(args: argparse.Namespace) -> dict:
    from helpers_media import make_clip

    from vlcli.backends.transformers.backend import TransformersBackend
    from vlcli.media.probe import expand_inputs
    from vlcli.outputs.files import check_targets, output_stems
    from vlcli.outputs.ledger import input_facts
    from vlcli.run.ask import Outputs, RunOptions, input_key, run_ask, settings_key
    from vlcli.run.prompt import AskSettings, Generation

    model, _ = setup(0)
    folder = BENCH / f"resume{args.records}"
    seed = BENCH / "seed.mp4"
    if not seed.exists():
        make_clip(seed, size=(160, 120), fps=10, seconds=3)
    folder.mkdir(parents=True, exist_ok=True)
    for n in range(args.records + 1):
        link = folder / f"c{n:05d}.mp4"
        if not link.exists():
            os.link(seed, link)
    settings = AskSettings("What happens?", generation=Generation(8))
    backend = TransformersBackend(
        str(model), device="cpu", dtype="float32", warn=lambda m: None, load=False
    )
    out = BENCH / "resume.jsonl"
    paths = sorted(str(p) for p in folder.iterdir())
    body = {"question": "What happens?", "task": "qa", "answer": "x" * 2200, "times": []}
    base = settings_key(settings, backend.identity())
    with open(out, "w") as fh:
        for p in paths[:-1]:  # every input but the last is done
            key = input_key(base, [input_facts(p)])
            fh.write(json.dumps({"key": key, "status": "ok", "path": p, **body}) + "\n")
    size_mb = out.stat().st_size / 1e6

    first_prepare: list[float] = []
    real_prepare = TransformersBackend.prepare

    def prepare(self, prompt, on_frames=None):  # type: ignore[no-untyped-def]
        if not first_prepare:
            first_prepare.append(time.perf_counter())
        return real_prepare(self, prompt, on_frames)

    TransformersBackend.prepare = prepare  # type: ignore[method-assign]
    started = time.perf_counter()
    found = expand_inputs([str(folder)])
    listed = time.perf_counter()
    stems = output_stems([str(folder)], found)
    check_targets(found, stems, [], str(out), None, resume=True)
    checked = time.perf_counter()
    view = Quiet()
    run_ask(
        backend, found, stems, [settings], RunOptions(resume=True), view, Outputs(str(out))
    )
    assert len(view.records) == 1 and first_prepare
    return {
        "records": args.records,
        "file_mb": round(size_mb, 1),
        "list_inputs_s": round(listed - started, 3),
        "names_and_checks_s": round(checked - listed, 3),
        "index_key_skip_s": round(first_prepare[0] - checked, 3),
        "to_first_new_input_s": round(first_prepare[0] - started, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--resume", action="store_true", help="measure resuming instead")
    parser.add_argument("--records", type=int, default=10_000)
    parser.add_argument("--clips", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--new-tokens", type=int, default=32)
    parser.add_argument("--one", choices=["ahead", "serial"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        model, folder = setup(args.clips)
        print(json.dumps(one_run(args.one, model, folder, args.new_tokens)))
        return
    print(f"load average before: {os.getloadavg()}", file=sys.stderr)
    if args.resume:
        figures = resume(args)
        print(json.dumps(figures))
        return
    runs = throughput(args)
    for mode in ("ahead", "serial"):
        mine = [r for r in runs if r["mode"] == mode]
        walls = ", ".join(f"{r['wall_s']:.1f}" for r in mine)
        best = min(mine, key=lambda r: r["wall_s"])
        print(
            f"{mode:7s} best {best['wall_s']:.1f} s ({walls}), "
            f"{best['records_per_min']:.1f} records/min, decode {best['decode_s']} s, "
            f"preprocess {best['preprocess_s']} s, generate {best['generate_s']} s"
        )
    print(json.dumps({"runs": runs, "load_after": os.getloadavg()}))


if __name__ == "__main__":
    main()
