"""Decoded frames to RGB exactly as torchcodec converts them, through the very libswscale it uses.

PyAV decodes with the FFmpeg bundled in its wheel; torchcodec (the reference's decoder) converts
with the system's FFmpeg, and the two libswscale versions, or PyAV's own conversion settings,
need not give the same bytes (measured: PyAV's ``to_ndarray`` differs on 10-bit video and on
full-range video the decoder labels ``yuv420p``). So the planes of each decoded frame are handed,
through ctypes, to the libswscale that torchcodec loaded, with torchcodec 0.14's calls:
``sws_getContext`` at the frame's size to RGB24 with no flags (swscale then picks bicubic, which
matters where chroma is interpolated, e.g. 10-bit input), the frame's colour matrix
(``sws_getCoefficients(colorspace)``) for both tables, and the source range that
``sws_getContext`` chose from the pixel format alone: like torchcodec, the frame's
``color_range`` is not used. Output rows are ``width * 3`` bytes apart, as in torchcodec's
tensors. The tests hold the result to torchcodec's frames on every kind of clip they make.

Only Linux is supported (the loaded library is found in ``/proc/self/maps``); elsewhere
:func:`converter` returns ``None`` and the caller decodes with torchcodec.
"""

from __future__ import annotations

import ctypes
import os
from dataclasses import dataclass
from typing import Any

_IntP = ctypes.POINTER(ctypes.c_int)


@dataclass(frozen=True)
class SwsLibraries:
    swscale: str
    avutil: str


def torchcodec_libraries() -> SwsLibraries | None:
    """The libswscale and libavutil files torchcodec loaded (importing it loads them)."""
    import torchcodec  # noqa: F401 - loads its FFmpeg libraries

    found: dict[str, str] = {}
    try:
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as maps:
            for line in maps:
                path = line.rstrip("\n").split(" ")[-1]
                name = os.path.basename(path)
                for lib in ("libswscale.so.", "libavutil.so."):
                    if name.startswith(lib):
                        found.setdefault(lib, path)
    except OSError:
        return None
    if len(found) != 2:
        return None
    return SwsLibraries(found["libswscale.so."], found["libavutil.so."])


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
        self._contexts: dict[tuple[int, int, str, int], int] = {}

    def close(self) -> None:
        for ctx in self._contexts.values():
            self._sws.sws_freeContext(ctx)
        self._contexts.clear()

    def _context(self, width: int, height: int, pix_fmt: str, colorspace: int) -> int:
        key = (width, height, pix_fmt, colorspace)
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
        if (
            sws.sws_setColorspaceDetails(
                ctx,
                coefficients,
                src_range.value,
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

    def convert(self, frame: Any, out: Any) -> None:
        """Write ``frame`` (a PyAV VideoFrame in system memory) into ``out``, a writable uint8
        tensor of at least ``(height + 2) * width * 3`` bytes (libswscale's vector code may write
        a little past the last row); its first ``height * width * 3`` bytes get the image."""
        width, height = frame.width, frame.height
        if out.numel() < (height + 2) * width * 3 or not out.is_contiguous():
            raise ValueError("the output buffer is too small")
        ctx = self._context(width, height, frame.format.name, int(frame.colorspace))
        planes = frame.planes
        src = (ctypes.c_void_p * 4)(*[p.buffer_ptr for p in planes][:4])
        strides = (ctypes.c_int * 4)(*[p.line_size for p in planes][:4])
        dst = (ctypes.c_void_p * 4)(out.data_ptr())
        dst_strides = (ctypes.c_int * 4)(width * 3)
        rows = self._sws.sws_scale(ctx, src, strides, 0, height, dst, dst_strides)
        if rows != height:
            raise ValueError(f"libswscale converted {rows} of {height} rows")


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
