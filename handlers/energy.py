"""An energy gate: clips with nothing audible in them never reach the model.

Not a speech detector: what a moderation model must hear is not only speech (moans, music,
screams), so the gate asks only whether any moment of the clip is louder than a floor. Its
measure is the loudest 20 ms frame's RMS level in dBFS (0 dBFS: a full-scale square wave), so
one short word in a minute of silence keeps the whole clip on the model's side of the gate.
"""

from __future__ import annotations

import torch

FRAME_SECONDS = 0.02
SILENT_DBFS = -120.0  # the level reported for digital silence (log of zero)


def frame_levels_dbfs(waveform: torch.Tensor, sample_rate: int) -> torch.Tensor:
    """The RMS level of each ``FRAME_SECONDS`` frame of a mono ``waveform``, in dBFS (a
    clip shorter than a frame is one frame, padded with silence)."""
    frame = max(1, int(sample_rate * FRAME_SECONDS))
    usable = waveform[: waveform.shape[-1] // frame * frame]
    if usable.numel() == 0:
        usable = torch.nn.functional.pad(waveform, (0, frame - waveform.shape[-1]))
    power = usable.double().reshape(-1, frame).pow(2).mean(dim=1)
    return (10.0 * torch.log10(power)).nan_to_num(SILENT_DBFS).clamp(min=SILENT_DBFS)


def loudest_frame_dbfs(waveform: torch.Tensor, sample_rate: int) -> float:
    """The RMS level of the loudest ``FRAME_SECONDS`` frame of a mono ``waveform``, in dBFS."""
    return float(frame_levels_dbfs(waveform, sample_rate).max())


class EnergyGate:
    """Passes a clip to the model when its loudest frame reaches ``floor_dbfs``."""

    def __init__(self, floor_dbfs: float, sample_rate: int) -> None:
        if not SILENT_DBFS < floor_dbfs < 0:
            raise ValueError(f"energy_gate_dbfs must lie between {SILENT_DBFS:g} and 0 dBFS, "
                             f"got {floor_dbfs}")
        self.floor_dbfs = floor_dbfs
        self.sample_rate = sample_rate

    def level(self, waveform: torch.Tensor) -> float:
        return loudest_frame_dbfs(waveform, self.sample_rate)

    def passes(self, level_dbfs: float) -> bool:
        return level_dbfs >= self.floor_dbfs
