"""The energy gate's measure: the loudest 20 ms frame's level in dBFS."""

import math

import pytest
import torch

from handlers.energy import SILENT_DBFS, EnergyGate, loudest_frame_dbfs

RATE = 16_000


def tone(amplitude: float, seconds: float = 1.0) -> torch.Tensor:
    t = torch.arange(int(RATE * seconds)) / RATE
    return amplitude * torch.sin(2 * math.pi * 440 * t)


def test_levels_of_known_signals():
    assert loudest_frame_dbfs(tone(1.0), RATE) == pytest.approx(-3.01, abs=0.1)
    assert loudest_frame_dbfs(tone(0.01), RATE) == pytest.approx(-43.01, abs=0.1)
    assert loudest_frame_dbfs(torch.zeros(RATE), RATE) == SILENT_DBFS
    assert loudest_frame_dbfs(torch.zeros(5), RATE) == SILENT_DBFS  # shorter than a frame


def test_one_loud_frame_decides_the_level_of_a_long_quiet_clip():
    clip = torch.zeros(RATE * 20)
    clip[RATE * 19: RATE * 19 + 320] = tone(0.5)[:320]
    assert loudest_frame_dbfs(clip, RATE) == pytest.approx(-9.0, abs=0.5)


@pytest.mark.parametrize("floor", [0.0, 5.0, -120.0, -200.0, float("nan")])
def test_a_floor_outside_the_scale_is_refused(floor):
    with pytest.raises(ValueError, match="energy_gate_dbfs"):
        EnergyGate(floor, RATE)


def test_the_gate_passes_at_and_above_its_floor():
    gate = EnergyGate(-50.0, RATE)
    assert gate.passes(-50.0) and gate.passes(-10.0) and not gate.passes(-50.1)
