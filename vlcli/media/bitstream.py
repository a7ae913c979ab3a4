"""What one coded packet is, read from its first bytes: may later pictures predict from it, and
can decoding start at it. Pure functions over bytes; no decoding, no FFmpeg.

The decoder (:mod:`vlcli.media.decode`) uses these facts to send the decoder only the packets a planned
frame needs, and to split a video into pieces that can be decoded independently:

* H.264: a picture whose slices all have ``nal_ref_idc == 0`` is never a reference (ITU-T H.264
  7.4.1), so leaving it out changes no other picture. Only IDR pictures (NAL type 5) empty the
  decoded picture buffer; an I picture of an open GOP is flagged a key frame by the container but
  the pictures shown before it refer across it, so it is no place to start.
* HEVC: sub-layer non-reference pictures (the ``_N`` NAL types) of the highest temporal sub-layer
  are never references (H.265 7.4.2.2); IDR pictures (types 19, 20) empty the buffer, CRA and BLA
  pictures do not for their leading pictures.
* VP9 and AV1: every packet counts as a reference (telling otherwise needs the full frame
  header); a key frame refreshes every reference slot, so decoding can start there.

Anything unusual (H.264 SVC/MVC, multi-layer HEVC, unreadable data) is reported as
``supported=False`` and the caller decodes that video the ordinary way.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

CODECS = ("h264", "hevc", "vp9", "av1")

_H264_VCL = frozenset(range(1, 6))
_H264_UNSUPPORTED = frozenset((14, 15, 20, 21))  # SVC / MVC prefix, subset SPS, extension slices
_HEVC_IDR = frozenset((19, 20))
_HEVC_SUBLAYER_NONREF = frozenset((0, 2, 4, 6, 8, 10, 12, 14))

Data = bytes | memoryview


@dataclass(frozen=True)
class Syntax:
    """How a stream's packets hold their units: ``length_size`` bytes of length before each NAL
    unit (MP4, Matroska: avcC/hvcC extradata) or start codes (``length_size`` 0: MPEG-TS, raw)."""

    codec: str
    length_size: int = 0


@dataclass(frozen=True)
class PacketFacts:
    """What decoding needs to know of one packet."""

    reference: bool = True  # a later picture may predict from it
    random_access: bool = False  # decoding from here gives every later frame exactly
    parameter_sets: bool = False  # it carries its own SPS/PPS (H.264) or VPS/SPS/PPS (HEVC)
    temporal_id: int = 0  # HEVC TemporalId of its pictures (the largest)
    sublayer_nonref: bool = False  # HEVC: all its pictures are sub-layer non-reference ones
    supported: bool = True


def syntax_for(codec: str, extradata: bytes | None) -> Syntax:
    """The packet syntax of a stream from its codec name and extradata."""
    data = extradata or b""
    if codec == "h264" and len(data) >= 7 and data[0] == 1:
        return Syntax(codec, (data[4] & 3) + 1)
    if codec == "hevc" and len(data) >= 23 and data[0] == 1:
        return Syntax(codec, (data[21] & 3) + 1)
    return Syntax(codec, 0)


def nal_units(data: Data, length_size: int) -> Iterator[int]:
    """Offsets of the NAL unit headers in one packet (length-prefixed or start codes)."""
    end = len(data)
    if length_size:
        i = 0
        while i + length_size < end:
            size = int.from_bytes(data[i : i + length_size], "big")
            i += length_size
            if size <= 0 or i + size > end:
                return
            yield i
            i += size
        return
    raw = bytes(data)
    i = raw.find(b"\x00\x00\x01")
    while i >= 0 and i + 3 < end:
        yield i + 3
        i = raw.find(b"\x00\x00\x01", i + 3)


def packet_facts(syntax: Syntax, data: Data) -> PacketFacts:
    """The facts of one packet of a stream with this syntax (``data``: its bytes, or a
    memoryview of them, which saves copying every packet)."""
    if syntax.codec == "h264":
        return _h264(data, syntax.length_size)
    if syntax.codec == "hevc":
        return _hevc(data, syntax.length_size)
    if syntax.codec == "vp9":
        return PacketFacts(random_access=_vp9_key_frame(data))
    if syntax.codec == "av1":
        return PacketFacts(random_access=_av1_key_frame(data))
    return PacketFacts(supported=False)


def _h264(data: Data, length_size: int) -> PacketFacts:
    reference = idr = False
    sps = pps = slices = 0
    for at in nal_units(data, length_size):
        header = data[at]
        kind = header & 0x1F
        if header & 0x80 or kind in _H264_UNSUPPORTED:
            return PacketFacts(supported=False)
        if kind in _H264_VCL:
            slices += 1
            reference |= bool(header & 0x60)
            idr |= kind == 5
        sps += kind == 7
        pps += kind == 8
    if not slices:
        return PacketFacts(supported=False)
    return PacketFacts(reference=reference, random_access=idr, parameter_sets=bool(sps and pps))


def _hevc(data: Data, length_size: int) -> PacketFacts:
    idr = True
    nonref = True
    slices = 0
    temporal_id = 0
    sets: set[int] = set()
    for at in nal_units(data, length_size):
        if at + 1 >= len(data):
            return PacketFacts(supported=False)
        b0, b1 = data[at], data[at + 1]
        kind, layer = (b0 >> 1) & 0x3F, ((b0 & 1) << 5) | (b1 >> 3)
        if b0 & 0x80 or layer or not b1 & 7:
            return PacketFacts(supported=False)
        if kind < 32:
            slices += 1
            temporal_id = max(temporal_id, (b1 & 7) - 1)
            idr &= kind in _HEVC_IDR
            nonref &= kind in _HEVC_SUBLAYER_NONREF
        elif kind in (32, 33, 34):
            sets.add(kind)
    if not slices:
        return PacketFacts(supported=False)
    return PacketFacts(
        random_access=idr,
        parameter_sets=len(sets) == 3,
        temporal_id=temporal_id,
        sublayer_nonref=nonref,
    )


def _vp9_key_frame(data: Data) -> bool:
    """The first frame of the packet (a superframe's too) is a VP9 key frame (spec 6.2)."""
    if not data:
        return False
    bits = _Bits(data)
    if bits.read(2) != 2:  # frame_marker
        return False
    profile = bits.read(1) | (bits.read(1) << 1)
    if profile == 3:
        bits.read(1)
    if bits.read(1):  # show_existing_frame
        return False
    return bits.read(1) == 0  # frame_type: KEY_FRAME


def _av1_key_frame(data: Data) -> bool:
    """The temporal unit starts a coded video sequence: a sequence header and a shown key frame."""
    reduced_still: bool | None = None
    i = 0
    while i < len(data):
        header = data[i]
        kind, extension, has_size = (header >> 3) & 0xF, header & 4, header & 2
        i += 2 if extension else 1
        if not has_size:
            size = len(data) - i
        else:
            size, i = _leb128(data, i)
        payload = data[i : i + size]
        i += size
        if kind == 1 and payload:  # OBU_SEQUENCE_HEADER: seq_profile(3) still_picture(1) reduced
            reduced_still = bool(payload[0] & 0x08)
        elif kind in (3, 6) and payload:  # OBU_FRAME_HEADER, OBU_FRAME
            if reduced_still is None:
                return False
            if reduced_still:
                return True
            bits = _Bits(payload)
            if bits.read(1):  # show_existing_frame
                return False
            return bits.read(2) == 0 and bits.read(1) == 1  # KEY_FRAME, show_frame
    return False


def _leb128(data: Data, i: int) -> tuple[int, int]:
    value = 0
    for n in range(8):
        if i >= len(data):
            break
        byte = data[i]
        i += 1
        value |= (byte & 0x7F) << (7 * n)
        if not byte & 0x80:
            break
    return value, i


class _Bits:
    """Reads bits most significant first; past the end it reads zeros."""

    def __init__(self, data: Data):
        self.data = data
        self.pos = 0

    def read(self, n: int) -> int:
        value = 0
        for _ in range(n):
            byte = self.pos >> 3
            bit = (self.data[byte] >> (7 - (self.pos & 7))) & 1 if byte < len(self.data) else 0
            value = (value << 1) | bit
            self.pos += 1
        return value
