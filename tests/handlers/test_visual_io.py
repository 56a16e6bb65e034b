"""Images and videos to frames under limits that cost little: pixels read from the header,
frames scaled as they are decoded, decode time bounded, animated images sampled."""

from __future__ import annotations

import time

import pytest

from handlers.errors import BadInput, OverLimit
from handlers.visual_io import FramePreparer, sample_video, scaled_size
from scripts import posts

SIZE = 32


def preparer(**limits) -> FramePreparer:
    return FramePreparer(image_size=SIZE, mean=[0.5] * 3, std=[0.5] * 3, **limits)


def test_a_decompression_bomb_is_refused_from_its_header_without_decoding():
    bomb = posts.bomb_png()  # 900 Mpx in ~110 KB
    started = time.process_time()
    with pytest.raises(OverLimit) as caught:
        preparer()(bomb)
    assert caught.value.status == 413 and "pixel limit" in caught.value.message
    assert time.process_time() - started < 1.0  # decoding it took minutes before


def test_an_image_under_the_limit_but_over_a_lower_one_is_refused():
    with pytest.raises(OverLimit):
        preparer(max_pixels=40 * 40)(posts.image(1))  # 64 x 48 = 3,072 px
    frames, kind = preparer()(posts.image(1))
    assert kind == "image" and frames.shape == (1, 3, SIZE, SIZE)


def test_an_animated_image_is_sampled_like_a_video():
    frames, kind = preparer()(posts.animated_gif(4, fps=5))
    assert kind == "video" and frames.shape == (4, 3, SIZE, SIZE)


def test_video_frames_are_scaled_as_they_are_decoded():
    big = posts.video(3, fps=2, audio=False, size=(1280, 720))
    frames = sample_video(big, frames_per_second=1, max_seconds=900, shortest_side=SIZE)
    assert frames.shape == (3, 3, SIZE, round(1280 * SIZE / 720))
    assert scaled_size(100, 50, 200) == (100, 50)  # never scaled up


def test_video_limits_on_pixels_and_decode_time():
    big = posts.video(2, fps=2, audio=False, size=(640, 480))
    with pytest.raises(OverLimit, match="Mpx"):
        sample_video(big, frames_per_second=1, max_seconds=900, shortest_side=SIZE,
                     max_pixels=100_000)
    with pytest.raises(OverLimit, match="decoding took over"):
        sample_video(big, frames_per_second=1, max_seconds=900, shortest_side=SIZE,
                     max_decode_s=0.0)


def test_garbage_is_still_an_undecodable_body():
    with pytest.raises(BadInput) as caught:
        preparer()(b"not an image, not a video" * 20)
    assert caught.value.status == 415
