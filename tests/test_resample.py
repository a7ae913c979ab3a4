"""The compiled resize (vlcli.media._resample via vlcli.media.resample) must give the reference's bytes:
torchvision's antialiased bicubic resize of the uint8 frame, and torch's floats before rounding.
"""

import platform

import pytest
import torch
from torchvision.transforms import InterpolationMode
from torchvision.transforms.functional import resize

from vlcli.media import pieces, resample

X86 = platform.machine() in ("x86_64", "AMD64")


@pytest.fixture(autouse=True)
def fresh_kernels(monkeypatch):
    """Every test sets its kernels up anew (they are cached per process and geometry)."""
    monkeypatch.setattr(resample, "_kernels", {})
    monkeypatch.setattr(resample, "_last_rule", [])
    monkeypatch.delenv("VLCLI_RESIZE", raising=False)


def reference(chw: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    return resize(chw, list(size), interpolation=InterpolationMode.BICUBIC, antialias=True)


def test_the_kernel_is_built_and_runs_here():
    """On x86-64 the install builds the kernel (setup.py); without it vlcli is correct but slow,
    and `make bench` would measure torch's resize, so its absence is a failure here."""
    if not X86:
        pytest.skip("the kernel is x86-64 only; elsewhere torch resizes")
    assert resample._module() is not None, "vlcli.media._resample was not built (see setup.py)"


GEOMETRIES = [
    ((1080, 1920), (560, 1008)),  # the default plan of a 1080p clip
    ((1920, 1080), (1008, 560)),  # a phone clip, upright
    ((2160, 3840), (504, 896)),  # 4K: supports of 16-17 taps (the remainder rule past 8)
    ((720, 1280), (476, 840)),
    ((123, 457), (56, 224)),  # odd sizes, not multiples of 8
    ((64, 96), (112, 168)),  # enlarged: 4-tap supports, all in the remainder
    ((480, 640), (480, 336)),  # only the width changes: torch skips the column pass
    ((480, 640), (336, 640)),  # only the height
    ((9, 7), (28, 28)),  # tiny
]


@pytest.mark.parametrize("source, size", GEOMETRIES)
def test_kernel_gives_torchvisions_bytes_and_torchs_floats(source, size):
    kernel = resample.kernel_for(source, size)
    if kernel is None:
        pytest.skip("no exact kernel on this machine (torch resizes)")
    generator = torch.Generator().manual_seed(sum(source) + sum(size))
    hwc = torch.randint(0, 256, (*source, 3), dtype=torch.uint8, generator=generator)
    out = torch.empty((3, *size), dtype=torch.uint8)
    floats = torch.empty((3, *size), dtype=torch.float32)
    for chw in (hwc.permute(2, 0, 1), hwc.permute(2, 0, 1).contiguous()):  # HWC memory, planar
        out.fill_(7)
        kernel.run(chw, out, floats=floats)
        assert torch.equal(out, reference(chw.contiguous(), size))
        expected = resample.torch_resize(chw[1].float(), size)
        assert torch.equal(floats[1].view(torch.int32), expected.view(torch.int32))


def test_kernel_on_a_real_frame(clip_landscape):
    """A decoded frame (smooth areas, edges, values near the rounding boundaries of real video),
    not only noise."""
    from torchcodec.decoders import VideoDecoder

    frame = VideoDecoder(clip_landscape).get_frames_at(indices=[3]).data[0]
    size = (frame.shape[1] // 2 // 28 * 28 or 28, frame.shape[2] // 2 // 28 * 28 or 28)
    kernel = resample.kernel_for((frame.shape[1], frame.shape[2]), size)
    if kernel is None:
        pytest.skip("no exact kernel on this machine (torch resizes)")
    out = torch.empty((3, *size), dtype=torch.uint8)
    kernel.run(frame, out)
    assert torch.equal(out, reference(frame, size))


def test_the_check_tells_the_rounding_rules_apart():
    """The rule is found, not assumed: on the 1080p geometry every other rounding of the sums
    gives other floats, so a torch built another way would be caught and left to torch."""
    kernel = resample.kernel_for((1080, 1920), (560, 1008))
    if kernel is None:
        pytest.skip("no exact kernel on this machine (torch resizes)")
    assert kernel.rule is not None and kernel.exact(kernel.rule, seed=1)
    wrong = [(1, False, False), (1, True, True), (4, True, False), (8, False, True)]
    for rule in wrong:
        if rule != kernel.rule:
            assert not kernel.exact(rule), rule


def test_no_exact_rule_means_torch_resizes(monkeypatch):
    """If no candidate gives torch's floats, the kernel is not used and the bytes still are the
    reference's (the Finisher's torch path)."""
    monkeypatch.setattr(resample, "RULES", ((1, True, True),))  # fused sums: not torch's here
    assert resample.kernel_for((1080, 1920), (560, 1008)) is None
    finisher = pieces.Finisher(pieces.Output(0, (560, 1008), (1080, 1920)))
    assert finisher.kernel is None
    hwc = torch.randint(0, 256, (1080, 1920, 3), dtype=torch.uint8)
    assert torch.equal(finisher(hwc), reference(hwc.permute(2, 0, 1).contiguous(), (560, 1008)))


def test_vlcli_resize_torch_turns_the_kernel_off(monkeypatch):
    monkeypatch.setenv("VLCLI_RESIZE", "torch")
    assert resample.kernel_for((1080, 1920), (560, 1008)) is None


def test_kernel_refuses_frames_of_another_geometry():
    kernel = resample.kernel_for((120, 160), (56, 84))
    if kernel is None:
        pytest.skip("no exact kernel on this machine (torch resizes)")
    frame = torch.zeros((3, 120, 160), dtype=torch.uint8)
    out = torch.empty((3, 56, 84), dtype=torch.uint8)
    kernel.run(frame, out)
    with pytest.raises(ValueError):  # a frame on its side
        kernel.run(torch.zeros((3, 160, 120), dtype=torch.uint8), out)
    with pytest.raises(ValueError):  # an output of another size
        kernel.run(frame, torch.empty((3, 84, 56), dtype=torch.uint8))
    with pytest.raises(ValueError):  # a float output
        kernel.run(torch.zeros((3, 120, 160), dtype=torch.uint8), torch.empty((3, 56, 84)))


def test_read_axis_gives_contiguous_supports_and_normalised_weights():
    """Supports are contiguous and cover the row, weights sum to about one, and a 1920 -> 1008
    axis has the 5- to 9-tap supports of a 1.9x antialiased bicubic."""
    axis = resample.read_axis(1920, 1008)
    assert axis.first.dtype == torch.int32 and axis.weights.shape[0] == 1008
    assert int(axis.first[0]) == 0 and int(axis.first[-1] + axis.size[-1]) == 1920
    sums = axis.weights.sum(1)
    assert torch.allclose(sums, torch.ones_like(sums), atol=1e-5)
    assert set(axis.size.tolist()) <= set(range(5, 10))


def test_kernel_reads_nothing_past_the_frame():
    """The frame's last byte right before an inaccessible page: the kernel's vector loads of
    the last row must stay inside the frame (a read past it would end this process)."""
    import ctypes
    import mmap

    kernel = resample.kernel_for((30, 200), (28, 112))
    if kernel is None:
        pytest.skip("no exact kernel on this machine (torch resizes)")
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mmap.restype = ctypes.c_void_p
    libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int,
                          ctypes.c_int, ctypes.c_long]  # fmt: skip
    libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
    page = mmap.PAGESIZE
    size = 30 * 200 * 3
    pages = -(-size // page)
    base = libc.mmap(None, (pages + 1) * page, mmap.PROT_READ | mmap.PROT_WRITE,
                     mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS, -1, 0)  # fmt: skip
    assert base not in (None, ctypes.c_void_p(-1).value)
    try:
        assert libc.mprotect(base + pages * page, page, 0) == 0  # PROT_NONE
        start = base + pages * page - size  # the frame ends where the guard page begins
        hwc = torch.frombuffer((ctypes.c_uint8 * size).from_address(start), dtype=torch.uint8)
        hwc = hwc.view(30, 200, 3)
        hwc.copy_(torch.randint(0, 256, (30, 200, 3), dtype=torch.uint8))
        out = torch.empty((3, 28, 112), dtype=torch.uint8)
        kernel.run(hwc.permute(2, 0, 1), out)
        assert torch.equal(out, reference(hwc.permute(2, 0, 1).contiguous(), (28, 112)))
    finally:
        libc.munmap(base, (pages + 1) * page)


def test_a_failing_set_up_leaves_the_resize_to_torch(monkeypatch):
    def failing(n_in, n_out):
        raise RuntimeError("torch could not resize the probe rows")

    monkeypatch.setattr(resample, "read_axis", failing)
    assert resample.kernel_for((1080, 1920), (560, 1008)) is None
