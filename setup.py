"""The one compiled part of vlcli: the resize kernel (vlcli/media/_resample.c).

It is optional: where it cannot be built (no C compiler), vlcli installs without it and resizes
with torch, as the reference does; where it is built, vlcli uses it only for the frame sizes on
which it gives torch's floats bit for bit (vlcli.media.resample checks that on the machine's own
torch before the first frame).
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "vlcli.media._resample",
            ["vlcli/media/_resample.c"],
            # no product and sum fused but the ones the kernel writes as fused
            extra_compile_args=["-O2", "-ffp-contract=off"],
            optional=True,
        )
    ]
)
