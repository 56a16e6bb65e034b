"""Media that declares far more work or memory than its size: each is refused from its header,
or decoded at a cost bounded before it is paid (scripts/hostile.py builds them)."""

from __future__ import annotations

import io
import threading
import time

import av
import numpy as np
import pytest
import torch

from handlers import audio_io, visual_io
from handlers.audio_io import ClipDecoder
from handlers.errors import OverLimit
from handlers.visual_io import FramePreparer
from scripts import clips, hostile

RATE = 16_000
SIZE = 32


@pytest.fixture
def decoder() -> ClipDecoder:
    return ClipDecoder(sample_rate=RATE, clip_samples=20 * RATE)


def preparer(**limits) -> FramePreparer:
    return FramePreparer(image_size=SIZE, mean=[0.5] * 3, std=[0.5] * 3, **limits)


@pytest.mark.parametrize("rate", [44_101, 47_999, 11_027, 96_000, 4_001])
def test_any_rate_resamples_through_a_small_filter_and_the_cache_stays_bounded(decoder, rate):
    waveform = decoder.decode(hostile.odd_rate_wav(rate))
    assert waveform.shape == (20 * RATE,) and bool(torch.isfinite(waveform).all())
    # Exact at 44,101 Hz the filter is 16,000 × 44,101 taps wide (2.6 GiB, once per rate).
    for filter_ in (audio_io.resampler(r, t) for r, t in _cached()):
        assert filter_.kernel.numel() < 1_000_000
    assert audio_io.resampler.cache_info().currsize <= audio_io.RESAMPLERS_CACHED


def _cached() -> list[tuple[int, int]]:
    return [(audio_io.on_grid(r), RATE) for r in (44_101, 47_999, 11_027, 96_000, 4_001)]


def test_the_grid_keeps_common_rates_exact():
    assert [audio_io.on_grid(r) for r in (8_000, 11_025, 22_050, 44_100, 48_000, 96_000)] == [
        8_000, 11_025, 22_050, 44_100, 48_000, 96_000]


def test_a_flac_declaring_17_gib_is_refused_from_its_header(decoder):
    bomb = hostile.flac_bomb()  # 655,350 Hz x 8 channels x 900 s in 120 bytes
    started = time.process_time()
    with pytest.raises(OverLimit, match="655350 Hz"):
        decoder.samples(bomb)
    assert time.process_time() - started < 1.0


@pytest.mark.parametrize("rate, channels, match", [
    (2_000, 1, "sample rate"), (192_000, 1, "sample rate"), (16_000, 9, "9 channels"),
])
def test_rates_and_channel_counts_outside_the_limits_are_413(decoder, rate, channels, match):
    with pytest.raises(OverLimit, match=match) as caught:
        decoder.decode(hostile.lying_wav(rate=rate, channels=channels, declared_frames=100))
    assert caught.value.status == 413


def matroska_pcm(rate: int, channels: int) -> bytes:
    """PCM in Matroska: libsndfile cannot read it, so it takes the FFmpeg path."""
    buffer = io.BytesIO()
    layout = {1: "mono", 2: "stereo", 16: "hexadecagonal"}[channels]
    with av.open(buffer, mode="w", format="matroska") as container:
        stream = container.add_stream("pcm_s16le", rate=rate, layout=layout)
        frame = av.AudioFrame.from_ndarray(
            np.zeros((1, 1024 * channels), dtype=np.int16), format="s16", layout=layout)
        frame.sample_rate = rate
        for packet in (*stream.encode(frame), *stream.encode(None)):
            container.mux(packet)
    return buffer.getvalue()


@pytest.mark.parametrize("rate, channels, match", [
    (2_000, 1, "sample rate"), (192_000, 2, "sample rate"), (16_000, 16, "16 channels")])
def test_the_same_limits_hold_on_the_ffmpeg_path(decoder, rate, channels, match):
    payload = matroska_pcm(rate, channels)
    with pytest.raises(OverLimit, match=match):
        decoder.decode(payload)
    assert decoder.decode(matroska_pcm(48_000, 2)).shape == (20 * RATE,)


def test_a_header_that_declares_more_frames_than_it_holds_allocates_what_it_holds(decoder):
    lying = hostile.lying_wav(channels=8, declared_frames=2**31, real_frames=RATE)
    assert decoder.samples(lying).shape == (RATE,)


def test_audio_decoding_stops_at_its_deadline():
    slow = ClipDecoder(sample_rate=RATE, clip_samples=20 * RATE, max_decode_s=0.0)
    with pytest.raises(OverLimit, match="too long"):
        slow.decode(clips.clip("wav", seconds=2))
    with pytest.raises(OverLimit, match="too long"):
        slow.decode(clips.clip("m4a", seconds=2))


def test_a_thin_image_is_cropped_before_it_is_resized():
    started = time.process_time()
    frames, kind = preparer()(hostile.thin_png())  # 4 x 1,000,000 px
    assert kind == "image" and frames.shape == (1, 3, SIZE, SIZE)
    assert time.process_time() - started < 5.0  # 224 x 56,000,000 floats otherwise
    assert visual_io.aspect_window(4, 1_000_000) == (slice(0, 4), slice(499_992, 500_008))
    assert visual_io.aspect_window(480, 640) == (slice(0, 480), slice(0, 640))


def test_a_normal_image_prepares_exactly_as_before():
    image = torch.randint(0, 256, (1, 3, 48, 64), dtype=torch.uint8)
    ours = preparer().prepare(image)
    expected = visual_io.F.center_crop(visual_io.F.resize(image, [SIZE], antialias=True),
                                       [SIZE, SIZE])
    assert torch.equal(ours, visual_io.F.normalize(expected.float() / 255, [0.5] * 3,
                                                   [0.5] * 3))


def test_a_progressive_jpeg_scan_bomb_is_refused_before_decoding():
    bomb = hostile.scan_bomb_jpeg()  # 30,009 scans in 1 MB: minutes of libjpeg
    started = time.process_time()
    with pytest.raises(OverLimit, match="30009 scans"):
        preparer()(bomb)
    assert time.process_time() - started < 1.0


def test_a_still_image_decode_is_answered_at_its_deadline(monkeypatch):
    monkeypatch.setattr(visual_io, "MAX_JPEG_SCANS", 10**6)  # only the deadline is left
    started = time.monotonic()
    with pytest.raises(OverLimit, match="took over"):
        preparer(max_decode_s=0.2)(hostile.scan_bomb_jpeg(scans=300))  # ~3 s to decode
    assert time.monotonic() - started < 2.0
    for thread in threading.enumerate():  # the decode finishes in the background
        if thread.name == "decode":
            thread.join()


def test_within_returns_results_and_errors_of_work_that_finishes():
    assert visual_io.within(1.0, lambda: 7, "x") == 7
    with pytest.raises(KeyError):
        visual_io.within(1.0, lambda: {}["missing"], "x")
    release = threading.Event()
    with pytest.raises(OverLimit):
        visual_io.within(0.05, release.wait, "x")
    release.set()


def test_a_gif_of_20000_frames_keeps_at_most_max_frames():
    gif = hostile.many_frames_gif()  # 200 s of 1 x 1 frames in 460 KB
    frames, kind = preparer(max_frames=50)(gif)
    assert kind == "video" and frames.shape == (50, 3, SIZE, SIZE)
    frames, _ = preparer()(gif)
    assert frames.shape[0] == 200  # one a second, under the default budget
