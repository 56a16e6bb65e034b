import numpy as np
import pytest
import torchaudio

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


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
@pytest.mark.parametrize("rate", [RATE, 44_100], ids=["native", "resampled"])
def test_non_finite_samples_are_refused_with_a_reason(decoder, value, rate):
    with pytest.raises(BadInput, match="non-finite") as caught:
        decoder.decode(clips.non_finite(value, rate=rate))
    assert 400 <= caught.value.status < 500


def test_finite_samples_that_overflow_in_the_resampler_are_refused(decoder):
    # Finite, but the worst case for the low-pass filter: the sign pattern of its own kernel
    # at float32's limit sums past float32's range.
    kernel = torchaudio.transforms.Resample(44_100, RATE).kernel[0, 0].numpy()
    burst = np.sign(kernel) * np.float32(3.4e38)
    samples = np.concatenate([np.zeros(1000), burst, np.zeros(1000)]).astype(np.float32)
    assert np.isfinite(samples).all()
    with pytest.raises(BadInput, match="after resampling"):
        decoder.decode(clips.encode_float(samples[:, None], 44_100))
