"""Frame enhancement: off by default; CLAHE brightens dark frames only; NLM removes noise."""

import torch

from handlers.enhance import FrameEnhancer


def frames(mean: float, noise: float, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    gradient = torch.linspace(-20, 20, 64).expand(64, 64)
    base = (mean + gradient + noise * torch.randn(2, 3, 64, 64, generator=generator))
    return base.clamp(0, 255).to(torch.uint8)


def test_enhancement_is_off_unless_an_archive_asks_for_it():
    assert FrameEnhancer.from_settings(None) is None
    assert FrameEnhancer.from_settings({"clahe": False, "denoise": False}) is None


def test_clahe_raises_the_contrast_of_dark_frames_and_leaves_bright_ones():
    enhancer = FrameEnhancer(clahe=True)
    dark, bright = frames(30, 2), frames(170, 2)
    enhanced = enhancer(dark).float()
    assert enhanced.std() > 1.2 * dark.float().std() and enhanced.mean() > dark.float().mean()
    assert torch.equal(enhancer(bright), bright)


def test_denoising_removes_most_of_the_noise():
    clean, noisy = frames(120, 0), frames(120, 25)
    denoised = FrameEnhancer(denoise=True, denoise_strength=15)(noisy)
    error_before = (noisy.float() - clean.float()).abs().mean()
    error_after = (denoised.float() - clean.float()).abs().mean()
    assert error_after < 0.5 * error_before
    assert denoised.shape == noisy.shape and denoised.dtype == torch.uint8
