"""Decoded frames to RGB exactly as torchcodec converts them, through the very libswscale it uses.

PyAV decodes with the FFmpeg bundled in its wheel; torchcodec (the reference's decoder) converts
with the system's FFmpeg, and the two libswscale versions, or PyAV's own conversion settings,
need not give the same bytes (measured: PyAV's ``to_ndarray`` differs on 10-bit video and on
full-range video the decoder labels ``yuv420p``). So the planes of each decoded frame are handed,
through ctypes, to the libswscale that torchcodec loaded, the way torchcodec 0.14 uses it on the
CPU (found by comparing bytes with torchcodec on clips made to tell the cases apart):

* frames whose width is a multiple of 32 and that are not rotated go through ``sws_scale``
  directly: a context at the frame's size to RGB24 with no flags (swscale then picks bicubic,
  which matters where chroma is interpolated, e.g. 10-bit input), the frame's colour matrix
  (``sws_getCoefficients(colorspace)``) for both tables, and the source range that
  ``sws_getContext`` chose from the pixel format alone: the frame's ``color_range`` is not used
  (a full-range ``yuv420p`` frame is converted as limited range); rows are ``width * 3`` apart;
* other frames go through FFmpeg's ``scale`` filter, which does the same but takes the range
  from the frame when it is set, and writes rows aligned as libavfilter's frame pool aligns them
  (32 bytes); the alignment changes the bytes swscale writes, so it is reproduced too.

The tests hold the result to torchcodec's frames on every kind of clip they make, and
:func:`vlcli.media.decode.conversion_matches` checks the first frame of each kind at run time, so that
another FFmpeg or torchcodec than the tested ones falls back to torchcodec rather than differ.

:func:`video_decoder_class` loads torchcodec's decoder itself, for that check and for the
ordinary decoding in :mod:`vlcli.media.frames`.

PyAV, torchcodec and torch are imported inside the functions: :mod:`vlcli.media.frames` imports
this module and must stay cheap to import (see there), and a torchcodec that cannot load FFmpeg
is caught where it is imported (an error, or no fast path).

Only Linux is supported (the loaded library is found in ``/proc/self/maps``); elsewhere, or
where it cannot be told, :func:`converter` returns ``None`` and the caller decodes with
torchcodec.
"""

from __future__ import annotations

import ctypes
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from vlcli.errors import ExitStatus, VlcliError

if TYPE_CHECKING:
    import torch

_IntP = ctypes.POINTER(ctypes.c_int)


@dataclass(frozen=True)
class SwsLibraries:
    swscale: str
    avutil: str


def torchcodec_libraries() -> SwsLibraries | None:
    """The libswscale and libavutil files torchcodec loaded (importing it loads them).

    They are read from the process's memory map: the files named ``libswscale*.so*`` and
    ``libavutil*.so*``, leaving out PyAV's own copies (in its ``av.libs`` folder) unless they are
    the only ones, which is the case where torchcodec was pointed at PyAV's libraries (the GPU
    kit does that): then both share them. ``None`` if there is not exactly one candidate each.
    """
    import av

    try:
        import torchcodec  # noqa: F401 - loads its FFmpeg libraries
    except (ImportError, OSError, RuntimeError):
        return None

    pyav_libs = os.path.dirname(os.path.dirname(os.path.abspath(av.__file__)))
    pyav_libs = os.path.join(pyav_libs, "av.libs") + os.sep
    found: dict[str, set[str]] = {"libswscale": set(), "libavutil": set()}
    try:
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as maps:
            for line in maps:
                path = line.rstrip("\n").split(" ")[-1]
                name = os.path.basename(path)
                for lib, paths in found.items():
                    if name.startswith((lib + ".so", lib + "-")) and ".so" in name:
                        paths.add(path)
    except OSError:
        return None
    chosen: dict[str, str] = {}
    for lib, paths in found.items():
        theirs = {p for p in paths if not p.startswith(pyav_libs)} or paths
        if len(theirs) != 1:
            return None
        chosen[lib] = theirs.pop()
    return SwsLibraries(chosen["libswscale"], chosen["libavutil"])


def video_decoder_class() -> Any:
    """torchcodec's ``VideoDecoder``; a :class:`VlcliError` (exit status 6) where torchcodec
    cannot load FFmpeg's shared libraries (the system's: it brings none of its own)."""
    try:
        from torchcodec.decoders import VideoDecoder
    except (ImportError, OSError, RuntimeError):
        raise VlcliError(
            "decoding videos needs FFmpeg's shared libraries, which torchcodec cannot load: "
            "install FFmpeg (e.g. 'sudo apt-get install ffmpeg')",
            ExitStatus.MISSING_DEPENDENCY,
        ) from None
    return VideoDecoder


class RgbConverter:
    """Converts PyAV video frames to uint8 ``(height, width, 3)`` buffers, as torchcodec does."""

    def __init__(self, libraries: SwsLibraries):
        self.libraries = libraries
        sws = ctypes.CDLL(libraries.swscale)
        avutil = ctypes.CDLL(libraries.avutil)
        avutil.av_get_pix_fmt.restype = ctypes.c_int
        avutil.av_get_pix_fmt.argtypes = [ctypes.c_char_p]
        sws.sws_getContext.restype = ctypes.c_void_p
        int_, ptr = ctypes.c_int, ctypes.c_void_p
        sws.sws_getContext.argtypes = [int_] * 7 + [ptr] * 3
        sws.sws_getCoefficients.restype = _IntP
        sws.sws_getCoefficients.argtypes = [int_]
        sws.sws_getColorspaceDetails.argtypes = [ptr] * 8
        sws.sws_setColorspaceDetails.argtypes = [ptr, _IntP, int_, _IntP, int_, int_, int_, int_]
        sws.sws_scale.argtypes = [ptr, ptr, ptr, int_, int_, ptr, ptr]
        sws.sws_freeContext.argtypes = [ctypes.c_void_p]
        self._sws = sws
        self._pix_fmt = avutil.av_get_pix_fmt
        self._rgb24 = self._pix_fmt(b"rgb24")
        self._contexts: dict[tuple[int, int, str, int, int], int] = {}
        self._buffer: torch.Tensor | None = None

    def close(self) -> None:
        for ctx in self._contexts.values():
            self._sws.sws_freeContext(ctx)
        self._contexts.clear()

    def _context(self, width: int, height: int, pix_fmt: str, colorspace: int, range_: int) -> int:
        key = (width, height, pix_fmt, colorspace, range_)
        ctx = self._contexts.get(key)
        if ctx is not None:
            return ctx
        fmt = self._pix_fmt(pix_fmt.encode())
        if fmt < 0:
            raise ValueError(f"pixel format {pix_fmt} unknown to torchcodec's FFmpeg")
        sws = self._sws
        ctx = sws.sws_getContext(
            width, height, fmt, width, height, self._rgb24, 0, None, None, None
        )
        if not ctx:
            raise ValueError(f"libswscale cannot convert {pix_fmt} to rgb24")
        inv, table = _IntP(), _IntP()
        src_range, dst_range = ctypes.c_int(), ctypes.c_int()
        brightness, contrast, saturation = ctypes.c_int(), ctypes.c_int(), ctypes.c_int()
        details = (inv, src_range, table, dst_range, brightness, contrast, saturation)
        if sws.sws_getColorspaceDetails(ctx, *(ctypes.byref(x) for x in details)) < 0:
            raise ValueError("sws_getColorspaceDetails failed")
        coefficients = sws.sws_getCoefficients(colorspace)
        full = src_range.value if range_ < 0 else range_
        if (
            sws.sws_setColorspaceDetails(
                ctx,
                coefficients,
                full,
                coefficients,
                dst_range.value,
                brightness.value,
                contrast.value,
                saturation.value,
            )
            < 0
        ):
            raise ValueError("sws_setColorspaceDetails failed")
        self._contexts[key] = ctx
        return ctx

    def convert(self, frame: Any, rotated: bool) -> torch.Tensor:
        """``frame`` (a PyAV VideoFrame in system memory) as torchcodec's uint8 ``(height, width,
        3)`` tensor before turning, laid out as torchcodec's is (rows may be padded).

        The result is a view of a buffer the next call overwrites: copy what must be kept.
        (libswscale's vector code may write a little past the last row: two rows more are
        allocated.)"""
        import torch

        width, height = frame.width, frame.height
        colorspace = int(frame.colorspace)
        if rotated or width % 32:  # the scale filter: the frame's range, pooled row alignment
            linesize = pool_linesize(width)
            range_ = {1: 0, 2: 1}.get(int(frame.color_range), -1)
            if colorspace < 1 or colorspace > 10 or colorspace == 8:
                colorspace = 5  # what the scale filter takes for unknown matrices (BT.470BG)
        else:
            linesize, range_ = width * 3, -1  # sws_scale into a packed tensor; range ignored
        need = (height + 2) * linesize
        if self._buffer is None or self._buffer.numel() < need:
            self._buffer = torch.empty(need, dtype=torch.uint8)
        buffer = self._buffer
        ctx = self._context(width, height, frame.format.name, colorspace, range_)
        planes = frame.planes
        src = (ctypes.c_void_p * 4)(*[p.buffer_ptr for p in planes][:4])
        strides = (ctypes.c_int * 4)(*[p.line_size for p in planes][:4])
        dst = (ctypes.c_void_p * 4)(buffer.data_ptr())
        dst_strides = (ctypes.c_int * 4)(linesize)
        rows = self._sws.sws_scale(ctx, src, strides, 0, height, dst, dst_strides)
        if rows != height:
            raise ValueError(f"libswscale converted {rows} of {height} rows")
        return buffer.as_strided((height, width, 3), (linesize, 3, 1))


def pool_linesize(width: int, align: int = 32) -> int:
    """The row size libavfilter's frame pool gives an RGB24 frame of ``width`` pixels: the
    smallest power-of-two rounding of the width whose row is a multiple of ``align``, aligned."""
    linesize = width * 3
    step = 1
    while step <= align:
        linesize = -(-width // step) * step * 3
        if not linesize & (align - 1):
            break
        step += step
    return -(-linesize // align) * align


_CONVERTER: RgbConverter | None = None
_TRIED = False


def converter() -> RgbConverter | None:
    """This process's converter, or ``None`` where torchcodec's libswscale cannot be found."""
    global _CONVERTER, _TRIED
    if not _TRIED:
        _TRIED = True
        libraries = torchcodec_libraries()
        if libraries is not None:
            try:
                _CONVERTER = RgbConverter(libraries)
            except (OSError, AttributeError):
                _CONVERTER = None
    return _CONVERTER


def decoder_source(path: str) -> Any:
    """What torchcodec is given to read ``path``: the path, or the open file when the name is
    not valid UTF-8 (torchcodec takes only names it can encode; the file it reads through
    Python, and keeps open as long as its decoder lives)."""
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        return open(path, "rb")  # noqa: SIM115 (the decoder holds it)
    return path
