import numpy as np
import pytest

from handlers.audio_io import ClipDecoder
from handlers.errors import BadInput
from scripts import clips

RATE = 16_000


@pytest.fixture
def decoder():
    return ClipDecoder(sample_rate=RATE, clip_samples=4 * RATE)


@pytest.mark.parametrize("fmt", clips.FORMATS)
def test_every_format_decodes_to_the_fixed_length(decoder, fmt):
    waveform = decoder.decode(clips.clip(fmt, seconds=2, rate=48_000, channels=2))
    assert waveform.shape == (4 * RATE,)
    assert waveform[: RATE].abs().mean() > 0.01  # signal where the clip is
    assert waveform[3 * RATE:].abs().max() < 1e-3  # silence padded after its 2 s


def test_long_clips_are_trimmed(decoder):
    assert decoder.decode(clips.clip("flac", seconds=9)).shape == (4 * RATE,)


def test_resampled_and_downmixed_signal_matches_the_native_one(decoder):
    native = decoder.decode(clips.encode(clips.synth(3, RATE, seed=4), RATE, "wav"))
    stereo_44k = clips.encode(clips.synth(3, 44_100, channels=2, seed=4), 44_100, "wav")
    other = decoder.decode(clips.encode(clips.synth(3, RATE, seed=5), RATE, "wav"))

    def correlation(a, b):
        return np.corrcoef(a[: 2 * RATE].numpy(), b[: 2 * RATE].numpy())[0, 1]

    # The tones survive resampling; the synth's white noise is drawn anew per rate.
    assert correlation(native, decoder.decode(stereo_44k)) > 0.95
    assert abs(correlation(native, other)) < 0.5


@pytest.mark.parametrize("payload, status", [(b"", 400), (b"\x00" * 1000, 415),
                                             (b"RIFF\x00\x00\x00\x00WAVEjunk", 415)])
def test_bad_payloads_raise_bad_input(decoder, payload, status):
    with pytest.raises(BadInput) as caught:
        decoder.decode(payload)
    assert caught.value.status == status
