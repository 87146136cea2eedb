"""BLAS threads: a worker process runs on MATCHING_WORKER_THREADS, and a post's few texts encode on one thread.

Several worker processes that each wake one BLAS thread per core oversubscribe the cores; a small encoder call
then waits for a core held by another process (measured 6-10 ms alone, up to 260 ms so).
"""

from __future__ import annotations

import numpy as np
import pytest
from threadpoolctl import threadpool_info, threadpool_limits

from apps.matching import engine
from nma_platform.celery import prepare_worker, prepare_worker_process


def blas_threads() -> set[int]:
    return {lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"}


@pytest.fixture
def restore_threads():
    before = engine._encoder_threads
    with threadpool_limits(limits=None):  # restores the process's limits on exit
        yield
    engine.configure_encoder(threads=before)


def test_worker_start_applies_the_setting_and_loads_the_encoder(
    settings, monkeypatch, restore_threads
) -> None:
    settings.MATCHING_WORKER_THREADS = 1
    monkeypatch.setattr(engine, "_encoder", None)  # a new process: nothing loaded yet
    prepare_worker()
    assert blas_threads() == {1}
    assert engine._encoder_threads == 1
    # Loaded before the first task (and before a prefork pool forks its children).
    assert engine._encoder is not None and engine._encoder._backend is not None


def test_each_prefork_child_applies_the_setting(settings, restore_threads) -> None:
    settings.MATCHING_WORKER_THREADS = 1
    engine.configure_threads(2)
    prepare_worker_process()
    assert blas_threads() == {1}
    assert engine._encoder_threads == 1


@pytest.mark.parametrize("n_texts, expected", [(1, 1), (engine.SMALL_ENCODE_BATCH - 1, 1),
                                               (engine.SMALL_ENCODE_BATCH, 2)])  # fmt: skip
def test_small_batches_encode_on_one_thread(
    monkeypatch, restore_threads, n_texts: int, expected: int
) -> None:
    engine.configure_encoder(threads=2)
    backend = engine._get_encoder()._model
    seen = []

    def record(texts):
        seen.append(blas_threads())
        return np.ones((len(texts), engine.EMBED_DIM), dtype=np.float32)

    monkeypatch.setattr(backend, "_encode", record)
    out = engine.encode_texts([f"text {i}" for i in range(n_texts)])
    assert out.shape == (n_texts, engine.EMBED_DIM)
    assert seen == [{expected}]
