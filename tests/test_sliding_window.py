"""The stride-averaged sliding window against a brute-force reference."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from roadnet.window_grid import window_starts
from worker.inference.sliding_window import predict_array, predict_rows


def test_window_starts_cover_edges() -> None:
    assert window_starts(1024, 256, 64)[-1] == 768
    assert window_starts(300, 256, 64) == [0, 44]
    assert window_starts(100, 256, 64) == [0]
    with pytest.raises(ValueError, match="stride 300 larger than window"):
        window_starts(1000, 256, 300)


def _fake_model(batch: np.ndarray) -> np.ndarray:
    # A position-dependent output, so that averaging mistakes show: mean of the window's red band
    # plus a ramp across the window.
    ramp = np.linspace(0, 1, batch.shape[-1], dtype=np.float32)
    return (batch[:, :1] / 255.0 * 0.5 + ramp[None, None, None, :] * 0.5).astype(np.float32)


@pytest.mark.parametrize(("height", "width"), [(300, 333), (256, 256), (120, 700)])
def test_predict_array_matches_brute_force(height: int, width: int) -> None:
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (3, height, width)).astype(np.float32)
    window, stride = 128, 32
    got = predict_array(image, _fake_model, window=window, stride=stride, batch_size=5)

    padded = np.pad(image, ((0, 0), (0, max(0, window - height)), (0, max(0, window - width))))
    ph, pw = padded.shape[1:]
    total = np.zeros((ph, pw))
    count = np.zeros((ph, pw))
    for r in window_starts(ph, window, stride):
        for c in window_starts(pw, window, stride):
            total[r : r + window, c : c + window] += _fake_model(
                padded[None, :, r : r + window, c : c + window]
            )[0, 0]
            count[r : r + window, c : c + window] += 1
    assert count.min() >= 1
    np.testing.assert_allclose(got, (total / count)[:height, :width], atol=1e-6)
    assert got.shape == (height, width)


def test_predict_rows_streams_in_bounded_memory() -> None:
    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, (3, 1000, 300)).astype(np.uint8)
    reads: list[tuple[int, int]] = []

    def read_rows(start: int, stop: int) -> np.ndarray:
        reads.append((start, stop))
        return image[:, start:stop]

    chunks = list(predict_rows(read_rows, 1000, 300, _fake_model, window=128, stride=32, batch_size=8))
    # Reads are consecutive and disjoint, each one step of the grid (two rows of 7 windows fill a batch
    # of 8); results come back in order.
    assert reads[0][0] == 0 and all(a[1] == b[0] for a, b in itertools.pairwise(reads))
    assert reads[-1][1] == 1000 and max(stop - start for start, stop in reads[1:]) <= 2 * 32
    assert [start for start, _ in chunks] == list(np.cumsum([0] + [len(p) for _, p in chunks[:-1]]))
    streamed = np.concatenate([p for _, p in chunks])
    np.testing.assert_allclose(
        streamed, predict_array(image.astype(np.float32), _fake_model, 128, 32, batch_size=3), atol=1e-6
    )
