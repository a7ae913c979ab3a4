"""Shared fixtures. Media files are made once per session with FFmpeg, tiny and short.

Sections: media files (below). Add new groups of fixtures under their own heading.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from helpers_media import ffmpeg, make_clip, make_image, set_rotation, truncate

# ---------------------------------------------------------------- media files


@pytest.fixture(scope="session")
def media_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A session folder for generated media (fixtures below write here)."""
    if shutil.which("ffmpeg") is None:
        pytest.skip("FFmpeg's ffmpeg command is needed to make test media")
    return tmp_path_factory.mktemp("media")


@pytest.fixture(scope="session")
def clip_landscape(media_dir: Path) -> str:
    """320x180, 25 fps, 4 s (100 frames), H.264 with B-frames, no audio."""
    return make_clip(media_dir / "landscape.mp4", size=(320, 180), fps=25, seconds=4)


@pytest.fixture(scope="session")
def clip_rotated(media_dir: Path) -> str:
    """Encoded 320x180 with a 90-degree display matrix: displays (and decodes) as 180x320."""
    plain = make_clip(media_dir / "unrotated.mp4", size=(320, 180), fps=25, seconds=2)
    return set_rotation(plain, media_dir / "rotated.mp4", 90)


@pytest.fixture(scope="session")
def clip_vfr(media_dir: Path) -> str:
    """Variable frame rate: 40 frames 1/20 s apart, then 20 frames 1/5 s apart (5.85 s)."""
    return make_clip(
        media_dir / "vfr.mp4",
        size=(160, 96),
        fps=20,
        seconds=6,
        extra_args=(
            "-vf",
            "setpts='(N+if(gte(N,40),3*(N-40),0))/(20*TB)'",
            "-fps_mode",
            "passthrough",
            "-frames:v",
            "60",
        ),
    )


@pytest.fixture(scope="session")
def clip_with_audio(media_dir: Path) -> str:
    """320x180, 25 fps, 2 s, with a 440 Hz AAC track."""
    return make_clip(
        media_dir / "with_audio.mp4",
        size=(320, 180),
        fps=25,
        seconds=2,
        extra_inputs=("-f", "lavfi", "-i", "sine=frequency=440:sample_rate=22050"),
        extra_args=("-c:a", "aac", "-b:a", "32k"),
    )


@pytest.fixture(scope="session")
def clip_audio_only(media_dir: Path) -> str:
    """An .m4a with one second of sine and no video."""
    out = media_dir / "tone.m4a"
    ffmpeg(
        "-f",
        "lavfi",
        "-i",
        "sine=frequency=440:sample_rate=22050",
        "-t",
        "1",
        "-c:a",
        "aac",
        "-b:a",
        "32k",
        str(out),
    )
    return str(out)


@pytest.fixture(scope="session")
def not_media(media_dir: Path) -> str:
    """A text file named .mp4."""
    out = media_dir / "notes.mp4"
    out.write_text("these are not the frames you are looking for\n" * 20)
    return str(out)


@pytest.fixture(scope="session")
def empty_file(media_dir: Path) -> str:
    out = media_dir / "empty.mp4"
    out.write_bytes(b"")
    return str(out)


@pytest.fixture(scope="session")
def truncated_clip(media_dir: Path, clip_landscape: str) -> str:
    """clip_landscape cut to half its bytes (its index, at the end of the file, is gone)."""
    return truncate(clip_landscape, media_dir / "truncated.mp4", 0.5)


@pytest.fixture(scope="session")
def truncated_faststart_clip(media_dir: Path) -> str:
    """A clip with its index first (faststart), cut to half: the index points past the end."""
    full = make_clip(
        media_dir / "faststart.mp4",
        size=(320, 180),
        fps=25,
        seconds=4,
        extra_args=("-movflags", "+faststart"),
    )
    return truncate(full, media_dir / "truncated_faststart.mp4", 0.5)


@pytest.fixture(scope="session")
def tall_image(media_dir: Path) -> str:
    """3x700 PNG: aspect ratio 233:1, over the model's limit of 200:1."""
    return make_image(media_dir / "tall.png", (3, 700))


@pytest.fixture(scope="session")
def still_image(media_dir: Path) -> str:
    """200x120 RGB PNG."""
    return make_image(media_dir / "still.png", (200, 120))


@pytest.fixture(scope="session")
def rgba_image(media_dir: Path) -> str:
    """150x100 RGBA PNG with transparency (the reference puts it on white)."""
    return make_image(media_dir / "rgba.png", (150, 100), mode="RGBA")
