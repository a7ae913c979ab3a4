"""Every file ``vlcli ask`` writes besides standard output: names, checks, atomic writes.

Three rules, so that a long run can be stopped at any moment and run again:

* A file is written to a temporary name in its own folder, synced and renamed over the target
  (:func:`atomic_write`): an interrupt or a full disk leaves the old file or the new one, never
  half of one.
* An input's output names come from its path relative to the argument that named it
  (``clips/a/clip.mp4`` given as ``clips`` -> ``a/clip``; :func:`output_stems`), not from the
  order of the run, so that a resumed run writes the same names.
* Targets are checked before the model is loaded (:func:`check_targets`): no output may be an
  input or another output, and an existing file is replaced or removed only when vlcli can
  prove it wrote it (:func:`written_by_vlcli`: the SHA-256 of what it wrote, kept beside it).

Nothing here prints; failures are :class:`~vlcli.errors.VlcliError`.
"""

from __future__ import annotations

import functools
import glob
import hashlib
import io
import os
import secrets
import stat
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ParamSpec

from vlcli.errors import InputError, UsageError

P = ParamSpec("P")

SUBTITLE_FORMATS = ("srt", "vtt")
_PROOF = ".written-by-vlcli"  # the suffix of a proof's name (see proof_path)


# ---------------------------------------------------------------- writing


def atomic_write(path: str | os.PathLike[str], data: bytes | str) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder, then rename it.

    The temporary file is synced before the rename and removed if anything fails (an interrupt
    included), so that ``path`` holds either its old content or all of the new.
    """
    target = Path(path)
    payload = data.encode("utf-8") if isinstance(data, str) else data
    target.parent.mkdir(parents=True, exist_ok=True)
    temp = target.with_name(f".{target.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        try:
            view = memoryview(payload)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temp, target)
    except BaseException:
        try:
            os.unlink(temp)
        except OSError:
            pass
        raise
    _sync_folder(target.parent)


def _sync_folder(folder: Path) -> None:
    """Make a rename durable (best effort: not every file system lets a folder be synced)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def png_bytes(image: object) -> bytes:
    """A PIL image as PNG bytes (to go through :func:`atomic_write`)."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")  # type: ignore[attr-defined]
    return buffer.getvalue()


# ---------------------------------------------------------------- names


def _base_of(arg: str) -> str | None:
    """The folder an argument names its files from: the folder itself, or a glob's fixed part."""
    if arg == "-":
        return None
    if os.path.isdir(arg):
        return os.path.normpath(arg)
    if glob.has_magic(arg) and not os.path.lexists(arg):
        fixed: list[str] = []
        for part in Path(os.path.expanduser(arg)).parts:
            if glob.has_magic(part):
                break
            fixed.append(part)
        return os.path.normpath(os.path.join(*fixed)) if fixed else "."
    return None


def _relative_stem(path: str, bases: Sequence[str]) -> str:
    norm = os.path.normpath(path)
    best: str | None = None
    for base in bases:
        if base == ".":
            inside = not os.path.isabs(norm) and not norm.startswith("..")
        else:
            inside = norm.startswith(base.rstrip(os.sep) + os.sep)
        if inside and (best is None or len(base) > len(best)):
            best = base
    rel = os.path.relpath(norm, best) if best is not None else os.path.basename(norm)
    stem = str(Path(rel).with_suffix("")) if Path(rel).suffix else rel
    return stem if stem not in ("", ".") else "input"


def output_stems(args: Sequence[str], paths: Sequence[str]) -> list[str]:
    """The name (less extension) of each input's output files, unique in the run.

    An input found inside a folder (or a glob's fixed folder) keeps its path relative to that
    folder (``clips`` -> ``a/clip`` for ``clips/a/clip.mp4``); any other input its file name less
    its extension. A later input whose name is taken (``x/a.mp4`` and ``y/a.mp4`` given as files,
    or ``clip.mp4`` and ``clip.mov``) gets ``a-2``, ``a-3``...: the names depend on the inputs
    and their order, never on which of them a run has finished. Compared without case, for file
    systems that ignore it.
    """
    bases = [b for b in (_base_of(a) for a in args) if b is not None]
    stems: list[str] = []
    used: set[str] = set()
    for path in paths:
        stem = _relative_stem(path, bases)
        name, k = stem, 2
        while name.lower() in used:
            name, k = f"{stem}-{k}", k + 1
        used.add(name.lower())
        stems.append(name)
    return stems


@dataclass(frozen=True)
class SubtitleTarget:
    """Where ``--srt``/``--vtt`` go: one file, or a folder with one file per input."""

    fmt: str  # "srt" or "vtt"
    target: str
    folder: bool

    def path_for(self, stem: str) -> Path:
        return Path(self.target) / f"{stem}.{self.fmt}" if self.folder else Path(self.target)


def subtitle_targets(srt: str | None, vtt: str | None, several: bool) -> list[SubtitleTarget]:
    """``--srt``/``--vtt`` as targets; a folder when the run has several answers or it is one.

    With several answers, a name that reads as one file (a ``.srt`` or ``.vtt`` ending, and no
    folder of that name yet) is refused rather than made into a folder the user did not mean.
    """
    out = []
    for fmt, target in (("srt", srt), ("vtt", vtt)):
        if not target:
            continue
        if several and os.path.isfile(target):
            raise UsageError(f"--{fmt} {target}: several inputs need a folder, and this is a file")
        named_as_file = Path(target).suffix.lower().lstrip(".") in SUBTITLE_FORMATS
        if several and named_as_file and not os.path.isdir(target):
            raise UsageError(
                f"--{fmt} {target}: several inputs get one subtitle file each: give a folder "
                "(one that exists may have any name), or one input"
            )
        out.append(SubtitleTarget(fmt, target, several or os.path.isdir(target)))
    return out


# ---------------------------------------------------------------- checks before the model loads


def proof_path(path: str | os.PathLike[str]) -> Path:
    """Where vlcli keeps the proof that it wrote ``path``: ``.NAME.written-by-vlcli`` beside it,
    holding the SHA-256 of the bytes it wrote."""
    target = Path(path)
    return target.with_name(f".{target.name}{_PROOF}")


def _digest(path: str | os.PathLike[str]) -> str | None:
    try:
        with open(path, "rb") as fh:
            return hashlib.file_digest(fh, "sha256").hexdigest()
    except OSError:
        return None


def _proven(path: str | os.PathLike[str]) -> set[str]:
    try:
        text = proof_path(path).read_text("ascii", "replace")
    except OSError:
        return set()
    return {line.split()[-1] for line in text.splitlines() if line.startswith("sha256 ")}


def written_by_vlcli(path: str | os.PathLike[str]) -> bool:
    """True when ``path`` holds exactly the bytes vlcli wrote there (its proof says so). A file
    that only looks like vlcli's (a hand-made subtitle file in the same form), or one changed
    since, is not: vlcli never removes or replaces it."""
    proven = _proven(path)
    return bool(proven) and _digest(path) in proven


def replaceable(path: str | os.PathLike[str]) -> bool:
    """``path`` may be written over: it does not exist, is empty, or vlcli wrote it."""
    try:
        if os.stat(path).st_size == 0:
            return True
    except FileNotFoundError:
        return True
    except OSError:
        return False
    return written_by_vlcli(path)


def write_owned(path: str | os.PathLike[str], data: bytes | str, what: str = "output") -> None:
    """:func:`atomic_write` ``data`` to ``path`` with the proof that vlcli wrote it; a file there
    that vlcli cannot prove it wrote is left alone (:class:`~vlcli.errors.InputError`).

    The proof lists the old bytes and the new while the file is replaced, so that an interrupt
    at any moment leaves a file vlcli can still prove its own.
    """
    if not replaceable(path):
        raise InputError(f"{path} exists and vlcli did not write it: not replaced (move it away)")
    payload = data.encode("utf-8") if isinstance(data, str) else data
    new = hashlib.sha256(payload).hexdigest()
    old = _digest(path) if written_by_vlcli(path) else None
    note = f"The SHA-256 of the {what} vlcli wrote to the file this one is named after:\n"
    proof = proof_path(path)
    atomic_write(proof, note + "".join(f"sha256 {h}\n" for h in (old, new) if h))
    try:
        atomic_write(path, payload)
    except BaseException:
        if old is None:  # nothing of vlcli's there: no proof either
            proof.unlink(missing_ok=True)
        raise
    atomic_write(proof, f"{note}sha256 {new}\n")


def remove_owned(path: str | os.PathLike[str]) -> bool:
    """Remove ``path`` and its proof when vlcli wrote it; True when it did."""
    if not written_by_vlcli(path):
        return False
    os.unlink(path)
    proof_path(path).unlink(missing_ok=True)
    return True


def _real(path: str | os.PathLike[str]) -> str:
    return os.path.realpath(os.path.expanduser(path))


FileId = tuple[int, int]


def file_ids(paths: Iterable[str]) -> set[FileId]:
    """The (device, inode) of each existing path: what a target is compared with to tell that it
    is an input, through symbolic and hard links alike (one ``stat`` per input)."""
    ids: set[FileId] = set()
    for p in paths:
        try:
            st = os.stat(p)
        except OSError:
            continue
        ids.add((st.st_dev, st.st_ino))
    return ids


def _file_id(path: str | os.PathLike[str]) -> FileId | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def not_regular(path: str | os.PathLike[str], mode: int | None = None) -> str | None:
    """What ``path`` (of ``mode`` when it is known) is when it exists and is not a regular file
    or a folder (a device, a pipe...), else None.

    An output file is read before it is added to (``-o``): a device such as /dev/full never
    ends and a pipe blocks, so only a regular file (or none yet) may be one.
    """
    if mode is None:
        try:
            mode = os.stat(path).st_mode
        except OSError:
            return None
    if stat.S_ISREG(mode) or stat.S_ISDIR(mode):
        return None
    if stat.S_ISFIFO(mode):
        return "a pipe"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "a socket" if stat.S_ISSOCK(mode) else "not a file"


def refuse_not_regular(option: str, path: str | os.PathLike[str], mode: int | None = None) -> None:
    """Refuse (status 2) an output target that exists and is not a regular file."""
    kind = not_regular(path, mode)
    if kind is not None:
        raise UsageError(f"{option} {path} is not a regular file ({kind}): give a file")


def _writable_folder(path: Path) -> str | None:
    """Why files cannot be made at ``path`` (None when they can): its nearest existing folder."""
    probe = path
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if not probe.is_dir():
        return f"{probe} is not a folder"
    if not os.access(probe, os.W_OK | os.X_OK):
        return f"permission denied in {probe}"
    return None


def _unreachable_is_usage(check: Callable[P, None]) -> Callable[P, None]:
    """A target that cannot even be looked at (under a folder without search permission) is a
    usage error naming the path, like one that cannot be written."""

    @functools.wraps(check)
    def checked(*args: P.args, **kwargs: P.kwargs) -> None:
        try:
            check(*args, **kwargs)
        except OSError as exc:
            why = (exc.strerror or type(exc).__name__).lower()
            raise UsageError(f"{exc.filename or 'an output'}: cannot write there ({why})") from None

    return checked


@_unreachable_is_usage
def check_targets(
    inputs: Sequence[str],
    stems: Sequence[str],
    subtitles: Iterable[SubtitleTarget],
    output: str | None,
    evidence: str | None,
    resume: bool = False,
    clips: str | None = None,
    crops: str | None = None,
) -> None:
    """Refuse, before anything is loaded, outputs that would destroy or clash (status 2).

    An output may not be an input or another output (``--srt X --vtt X``, ``-o`` onto a
    subtitle file); an existing subtitle target must be empty or written by vlcli (it is
    replaced); ``--evidence``, ``--clips`` and ``--crops`` must be folders (not an input);
    each target's folder must be writable; an ``--output`` file that holds records is only
    continued with ``resume``.
    """
    input_ids = file_ids(inputs)
    taken: dict[str, str] = {}

    def claim(option: str, path: Path) -> None:
        real = _real(path)
        if _file_id(path) in input_ids:
            raise UsageError(f"{option} {path} is an input: refusing to overwrite it")
        if real in taken and taken[real] != option:
            raise UsageError(
                f"{option} {path} is also the target of {taken[real]}: give each its own"
            )
        if real in taken:
            raise UsageError(f"{option} {path} would be written twice in this run")
        taken[real] = option
        why = _writable_folder(path.parent)
        if why is not None:
            raise UsageError(f"{option} {path}: cannot write there ({why})")

    if output is not None:
        out = Path(output)
        if out.is_dir():
            raise UsageError(
                f"--output {output} is a folder: give a file for the JSON Lines records"
            )
        refuse_not_regular("--output", out)
        claim("--output", out)
        if not resume and out.is_file() and out.stat().st_size > 0:
            raise UsageError(
                f"--output {output} already holds records: --resume continues it, "
                "or remove it (or give another file) to start again"
            )
    for option, name in (("--evidence", evidence), ("--clips", clips), ("--crops", crops)):
        if name is not None:
            _check_folder(option, name, input_ids, taken)
    for sub in subtitles:
        option = f"--{sub.fmt}"
        for stem in stems if sub.folder else stems[:1]:
            path = sub.path_for(stem)
            claim(option, path)
            if path.is_dir():
                raise UsageError(f"{option} {path} is a folder")
            if path.exists() and not replaceable(path):
                raise UsageError(
                    f"{option} {path} exists and vlcli did not write it (or it changed since): "
                    "refusing to replace it (move it away or give another target)"
                )
        if sub.folder and Path(sub.target).exists() and not Path(sub.target).is_dir():
            raise UsageError(f"{option} {sub.target} is not a folder")


def _check_folder(option: str, name: str, input_ids: set[FileId], taken: dict[str, str]) -> None:
    """A folder of outputs (``--evidence``, ``--clips``): a folder or none yet, not an input nor
    another option's file, and writable."""
    folder = Path(name)
    if folder.exists() and not folder.is_dir():
        raise UsageError(f"{option} {name} is not a folder")
    if _file_id(folder) in input_ids:
        raise UsageError(f"{option} {name} is an input")
    if _real(folder) in taken:
        raise UsageError(f"{option} {name} is also the target of {taken[_real(folder)]}")
    why = _writable_folder(folder)
    if why is not None:
        raise UsageError(f"{option} {name}: cannot write there ({why})")


def check_not_input(path: Path, inputs: set[FileId]) -> None:
    """Refuse to write ``path`` when it is one of the run's inputs (:func:`file_ids`)."""
    if _file_id(path) in inputs:
        raise InputError(f"{path} is an input: not overwritten")
