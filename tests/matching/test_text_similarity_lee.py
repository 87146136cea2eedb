"""TextModel.similarity against human judgements: the Lee et al. (2005) corpus shipped in gensim's wheel."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

gensim = pytest.importorskip("gensim", reason="gensim ships the Lee corpus and its human ratings (dev extra)")

from apps.matching.engine import TextModel  # noqa: E402

LEE = Path(gensim.__file__).parent / "test" / "test_data"


def _lines(name: str) -> list[str]:
    return [line.strip() for line in (LEE / name).read_text(encoding="latin-1").splitlines() if line.strip()]


def test_similarity_correlates_with_human_ratings() -> None:
    docs, background = _lines("lee.cor"), _lines("lee_background.cor")
    # 50 x 50 averaged human ratings, upper triangle filled (lower is zeros), diagonal 1.
    human = np.loadtxt(LEE / "similarities0-1.txt")
    assert len(docs) == 50 and human.shape == (50, 50)

    model = TextModel.fit(background + docs)
    sims = model.similarity(docs, docs)

    upper = np.triu_indices(50, k=1)
    pearson = float(np.corrcoef(sims[upper], human[upper])[0, 1])
    # Measured 0.712 (word TF-IDF 0.58, char TF-IDF 0.60, USE 0.60 alone; ESA 0.72 in the literature).
    assert pearson >= 0.70, pearson
