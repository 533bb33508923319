"""Appearance transfer: FDA and histogram matching do what they claim, labels stay exact."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from synth.appearance import fourier_transfer, match_histograms, reference_images
from synth.config import parse_config
from synth.dataset import Dataset
from synth.errors import DataError
from synth.render import render_dataset
from synth.scene import sample_scene

RNG = np.random.default_rng(0)
SOURCE = RNG.integers(40, 90, (64, 64, 3)).astype(np.uint8)
TARGET = (RNG.integers(0, 60, (64, 64, 3)) + np.linspace(100, 190, 64)[None, :, None]).astype(np.uint8)


def test_fda_takes_the_targets_low_frequencies_and_keeps_the_sources_detail():
    assert np.array_equal(fourier_transfer(SOURCE, TARGET, beta=0.0), SOURCE)
    assert np.abs(fourier_transfer(SOURCE, SOURCE, beta=0.1).astype(int) - SOURCE).max() <= 1
    out = fourier_transfer(SOURCE, TARGET, beta=0.05).astype(np.float64)
    assert abs(out.mean() - TARGET.mean()) < 1.0  # the DC term (brightness) is the target's
    spectrum = lambda x: np.abs(np.fft.fftshift(np.fft.fft2(x.astype(np.float64), axes=(0, 1)), axes=(0, 1)))  # noqa: E731
    low = (slice(29, 36), slice(29, 36))  # beta 0.05 of 64 px: 3 bins around the centre
    assert np.allclose(spectrum(out)[low], spectrum(TARGET)[low], rtol=0.02, atol=64 * 64)
    detail = lambda x: x - np.roll(x, 1, axis=0)  # noqa: E731 - high-pass: pixel-to-pixel steps
    correlation = np.corrcoef(detail(out).ravel(), detail(SOURCE.astype(np.float64)).ravel())[0, 1]
    assert correlation > 0.9


def test_histogram_matching_gives_the_targets_grey_levels():
    out = match_histograms(SOURCE, TARGET).astype(np.float64)
    for c in range(3):
        assert abs(out[..., c].mean() - TARGET[..., c].mean()) < 2.0
        assert abs(out[..., c].std() - TARGET[..., c].std()) < 2.0
        order = np.argsort(SOURCE[..., c].ravel(), kind="stable")
        assert np.all(np.diff(out[..., c].ravel()[order]) >= 0)  # grey levels keep their order


def test_renders_matched_to_a_datasets_good_train_images_keep_their_labels(tiny_scene, tmp_path: Path):
    reference = tmp_path / "reference"
    render_dataset(parse_config({**tiny_scene, "seed": 9}), reference, renderer="raster", progress=False)
    good_train = sorted(s.image_path for s in Dataset(reference).samples("train") if s.good)
    assert reference_images(str(reference)) == tuple(good_train)  # never val, test or defective

    matched = {
        **tiny_scene,
        "appearance": {"reference": str(reference), "method": "fda", "beta": [0.02, 0.05]},
    }
    clean, transferred = tmp_path / "clean", tmp_path / "fda"
    render_dataset(parse_config(tiny_scene), clean, renderer="raster", progress=False)
    render_dataset(parse_config(matched), transferred, renderer="raster", progress=False)
    for a, b in zip(Dataset(clean).samples("test"), Dataset(transferred).samples("test"), strict=True):
        assert np.array_equal(a.instance_map(), b.instance_map())
        assert not np.array_equal(a.image(), b.image())
    spec = sample_scene(parse_config(matched), 3)
    assert spec.appearance is not None and 0.02 <= spec.appearance.beta <= 0.05
    assert sample_scene(parse_config(matched), 3) == spec  # deterministic per image


def test_a_reference_without_good_images_names_the_setting(tiny_scene, tmp_path: Path):
    (tmp_path / "empty").mkdir()
    scene = {**tiny_scene, "appearance": {"reference": str(tmp_path / "empty")}}
    with pytest.raises(DataError, match=r"appearance.reference: .*empty holds no good images"):
        render_dataset(parse_config(scene), tmp_path / "out", renderer="raster", progress=False)
