"""Where, not only when: the boxes and points an answer states (:mod:`vlcli.space.read`) and
the pixels of the source they mean (:mod:`vlcli.space.place`).

A model states a position in its own coordinates: Qwen2.5-VL in pixels of the resized input it
was shown, Qwen2-VL and Qwen3-VL in thousandths of the width and the height (the family's
:class:`~vlcli.models.families.Coordinates`). The plan knows that resized size exactly, and the
source's size as displayed (rotation applied), so every box is mapped to source pixels here;
for a video, the box's stated time goes through the time axis as every time does.
"""
