"""Compiled loops of the matching engine's rebuild path (numba; no Django import).

- `score_block` does in one pass per query row what numpy did in a dozen passes over a whole block: the word
  TF-IDF and ESA products (sparse x sparse, scattered into row buffers instead of a sparse result that is then
  densified), the calibration, the blend, the structured fit, the hard rules and the row's candidate
  threshold; `at_least` then lists the candidates (and the offers' contenders) without a block of booleans.
- `pair_dots` (the rescoring's dot products), `top_products` (the explanations' top terms), `coverages`
  (the rerank's sentence coverage, exact int8 products read in place), `merge_best` (the offers' running
  best), `quantise` (int8 sentence vectors) and `spread_product` (ESA activations) give the same values as
  the numpy code they replaced, which the tests compare them with.

Each function is compiled on first use, cached on disk (`engine.warm_up` readies them in a worker), and
releases the GIL, so the rebuild's scoring threads run them in parallel. No fast-math: float32 steps are those
of numpy, without fused multiply-adds.
"""

from __future__ import annotations

import numba as nb
import numpy as np
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

# `score_block`'s float32 operations are those of `MatchIndex._block`'s numpy passes, in the same order: the
# scores are the same up to the order of the sparse products' sums.


@nb.njit(nogil=True, cache=True)
def _scatter(indptr, indices, data, i, bt_indptr, bt_indices, bt_data, start, stop, buf):  # pragma: no cover
    """buf[j - start] += a[i] . b[j] for the rows j in [start, stop) of b, from b transposed (CSR, sorted)."""
    for p in range(indptr[i], indptr[i + 1]):
        t = indices[p]
        v = data[p]
        lo = bt_indptr[t]
        hi = bt_indptr[t + 1]
        if start > 0 and lo < hi:
            lo += np.searchsorted(bt_indices[lo:hi], start)
        for s in range(lo, hi):
            r = bt_indices[s]
            if r >= stop:
                break
            buf[r - start] += v * bt_data[s]


@nb.njit(nogil=True, cache=True)
def _kth_largest(row, take):  # pragma: no cover
    """The take-th largest value of row (1 <= take <= len(row)): a min-heap of the best `take` seen.

    The row is read in `_PASSES` passes, each over short runs spread along it: a block's columns run by support
    types, along which scores drift, and in that order the heap would take in much of the row (6.5 ns an entry
    against 0.8)."""
    heap = np.empty(take, dtype=np.float32)
    size = 0
    m = len(row)
    run = (m + _PASSES * _PASSES - 1) // (_PASSES * _PASSES)  # pass p reads run p of each of _PASSES segments
    for p in range(_PASSES * _PASSES):
        first = (p % _PASSES) * _PASSES * run + (p // _PASSES) * run
        for j in range(first, min(first + run, m)):
            x = row[j]
            if size < take:
                c = size  # sift up
                size += 1
                while c > 0:
                    parent = (c - 1) // 2
                    if heap[parent] <= x:
                        break
                    heap[c] = heap[parent]
                    c = parent
                heap[c] = x
            elif x > heap[0]:
                c = 0  # replace the root, sift down
                while True:
                    left = 2 * c + 1
                    if left >= take:
                        break
                    right = left + 1
                    child = right if right < take and heap[right] < heap[left] else left
                    if heap[child] >= x:
                        break
                    heap[c] = heap[child]
                    c = child
                heap[c] = x
    return heap[0]


_PASSES = 8


@nb.njit(nogil=True, cache=True)
def score_block(
    out,
    qw_indptr, qw_indices, qw_data, bw_indptr, bw_indices, bw_data,
    qe_indptr, qe_indices, qe_data, be_indptr, be_indices, be_data,
    start, stop, cal, coef, r_lang, c_lang, offsets,
    table, r_prof, c_prof, r_amount, r_flag, c_amount, c_flag, c_amt,
    r_bits, c_bits, r_open, c_open, r_support, c_support, r_party, c_party, r_ok, c_ok,
    residual, below, take, floor, thresholds,
):  # fmt: skip  # pragma: no cover
    """Block scores of the query rows against the rows [start, stop) of the other side, in place of `out`
    ((n, stop - start) float32, C order), which holds the raw semantic dot products on entry; entries that
    break a hard rule become `below`. thresholds[i]: what an entry of row i must reach to be a candidate
    (within 1e-4 of the take-th best of the row and of the floor; see `MatchIndex._block_candidates`).

    cal: (lo, scale / (hi - lo)) of words, ESA and semantic, for the scales 1 - esa_share, esa_share and 1.
    coef: (1 - esa_share, esa_share, lexical / W, (semantic + lexical) / W, cross_lingual_lexical).
    offsets: (2, n) the background of the lexical component of two posts in one language and 1 / (1 - it), by
    the language's code (`engine._offset_table`): such a pair's lexical component L is read as
    max(L - offset, 0) * gain; (2, 0) when no language has one.
    table: the scaled tag fit of (row profile, column profile). The columns' profiles, amounts and flags cover
    the run [start, stop) only; the other column arrays cover the whole side. Amounts: the need's
    0.15 * scale / sqrt(amount) and the offer's sqrt(amount); flags 1 (the need asks for 0), 2 (unknown).
    residual: (n, m) bool of the rare eligibility tokens, or (0, 0) when there are none. r_ok, c_ok: the rules
    of one post (published; a need has a Party). r_party, c_party: -1 for none."""
    n = out.shape[0]
    m = stop - start
    words = np.empty(m, dtype=np.float32)
    esa = np.empty(m, dtype=np.float32)
    tags = np.empty(m, dtype=np.float32)
    amounts = np.empty(m, dtype=np.float32)
    extra = np.zeros(m, dtype=np.bool_)
    lo_w, a_w, lo_e, a_e, lo_s, a_s = cal[0], cal[1], cal[2], cal[3], cal[4], cal[5]
    w_share, e_share, w_lex, w_sum, xl = coef[0], coef[1], coef[2], coef[3], coef[4]
    zero = np.float32(0.0)
    one = np.float32(1.0)
    half = np.float32(0.5)
    lo_w_a = lo_w * a_w
    lo_e_a = lo_e * a_e
    lo_s_a = lo_s * a_s
    c_bits_run = c_bits[start:stop]
    c_open_run = c_open[start:stop]
    c_support_run = c_support[start:stop]
    c_ok_run = c_ok[start:stop]
    c_party_run = c_party[start:stop]
    c_lang_run = c_lang[start:stop]
    any_offset = offsets.shape[1] > 0
    for i in range(n):
        row = out[i]
        if not r_ok[i]:
            row[:] = below
            thresholds[i] = floor - np.float32(1e-4)
            continue
        words[:] = 0.0
        esa[:] = 0.0
        _scatter(qw_indptr, qw_indices, qw_data, i, bw_indptr, bw_indices, bw_data, start, stop, words)
        _scatter(qe_indptr, qe_indices, qe_data, i, be_indptr, be_indices, be_data, start, stop, esa)
        rl = r_lang[i]
        own = offsets[0, rl] if any_offset else zero  # two posts in the row's language
        gain = offsets[1, rl] if any_offset else one
        ra = r_amount[i]
        rf = r_flag[i]
        rb = r_bits[i]
        ro = r_open[i]
        rs = r_support[i]
        rparty = r_party[i]
        # The lookups first (gathers and selects), so that the main loop below is plain arithmetic on runs.
        tag_row = table[r_prof[i]]
        for j in range(m):
            tags[j] = tag_row[c_prof[j]]
            cf = c_flag[j]
            amount = min(ra * c_amount[j], c_amt)
            amount = c_amt if (rf == 1) | (cf == 1) else amount
            amounts[j] = half * c_amt if (rf == 2) | (cf == 2) else amount
        if residual.shape[0] > 0:
            extra[:] = residual[i]
        for j in range(m):
            ok = ((rb & c_bits_run[j]) != 0) | ro | c_open_run[j] | extra[j]
            ok = ok & ((rs & c_support_run[j]) != 0) & c_ok_run[j] & (rparty != c_party_run[j])
            lw = words[j] * a_w - lo_w_a
            lw = min(max(lw, zero), w_share)
            le = esa[j] * a_e - lo_e_a
            le = min(max(le, zero), e_share)
            sem = row[j] * a_s - lo_s_a
            sem = min(max(sem, zero), one)
            same = rl == c_lang_run[j]
            lexical = max(lw + le - own, zero) * gain if same else lw + le
            lex = (lexical - sem) * w_lex
            lex *= one if same else xl
            total = lex + sem * w_sum + tags[j] + amounts[j]
            row[j] = total if ok else below
        kth = row.min() if take >= m else _kth_largest(row, take)
        thresholds[i] = max(kth, floor) - np.float32(1e-4)


@intrinsic
def _pointer(typingctx, address):  # pragma: no cover
    """An address (an integer) as a void pointer, for `nb.carray`."""

    def codegen(context, builder, signature, args):
        return builder.inttoptr(args[0], cgutils.voidptr_t)

    return types.voidptr(types.intp), codegen


@nb.njit(nogil=True, cache=True)
def coverages(
    value_addresses, scale_addresses, counts, dim, need_of, offer_of, unit, out
):  # pragma: no cover
    """out[p]: the sentence coverage (`engine.sentence_coverage`) of the pair (post need_of[p], post
    offer_of[p]). Post i's sentence vectors are read where they are, not copied: `counts[i]` int8 rows of `dim`
    at value_addresses[i] and their float64 scales at scale_addresses[i] (the caller keeps them alive). Integer
    products and float64 steps as there: exact, so the same value."""
    for p in range(len(need_of)):
        a = need_of[p]
        b = offer_of[p]
        na = counts[a]
        nb_ = counts[b]
        need = nb.carray(_pointer(value_addresses[a]), (na, dim), np.int8)
        need_scale = nb.carray(_pointer(scale_addresses[a]), (na,), np.float64)
        offer = nb.carray(_pointer(value_addresses[b]), (nb_, dim), np.int8)
        offer_scale = nb.carray(_pointer(scale_addresses[b]), (nb_,), np.float64)
        total = 0.0
        for x in range(na):
            best = -np.inf
            for y in range(nb_):
                acc = np.int32(0)
                for k in range(dim):
                    # int16 products summed in int32 (exact: |sum| <= 512 * 128**2 < 2**31), spelt so that the
                    # compiler keeps them narrow (pmaddwd): numba's own typing widens to int64, 2.4x slower.
                    acc = np.int32(acc + np.int32(np.int16(need[x, k]) * np.int16(offer[y, k])))
                v = np.float64(acc) * offer_scale[y]
                if v > best:
                    best = v
            total += best * need_scale[x]
        out[p] = min(max(total / na / unit, 0.0), 1.0)


@nb.njit(nogil=True, cache=True)
def merge_best(best_scores, best_keys, threshold, floor, cols, scores, keys):  # pragma: no cover
    """Take contenders (column, score, key) into each column's best: (n_columns, keep) scores and keys, unfilled
    slots -inf / -1. A contender replaces its column's worst slot (the lowest score, of those the highest key)
    if it beats it (a higher score, or the same and a lower key): in any order, the columns end up with their
    best `keep` by score, ties going to the lower key. Then threshold[c] of each column touched: its worst
    score (at least `floor`) once it is full, else `floor`."""
    keep = best_scores.shape[1]
    for p in range(len(cols)):
        c = cols[p]
        s = scores[p]
        k = keys[p]
        worst = 0
        worst_s = best_scores[c, 0]
        worst_k = best_keys[c, 0]
        for slot in range(1, keep):
            x = best_scores[c, slot]
            y = best_keys[c, slot]
            if x < worst_s or (x == worst_s and y > worst_k):
                worst, worst_s, worst_k = slot, x, y
        if s > worst_s or (s == worst_s and k < worst_k):
            best_scores[c, worst] = s
            best_keys[c, worst] = k
    for p in range(len(cols)):
        c = cols[p]
        lowest = np.inf
        full = True
        for slot in range(keep):
            if best_keys[c, slot] < 0:
                full = False
            lowest = min(lowest, best_scores[c, slot])
        threshold[c] = max(lowest, floor) if full else floor


@nb.njit(nogil=True, cache=True)
def at_least(scores, row_threshold, column_threshold):  # pragma: no cover
    """(rows, columns) of the entries of `scores` (n, m) at or above their row's threshold, or their column's
    when `row_threshold` is empty, in row-major order: `np.nonzero(scores >= threshold)` without the
    temporary block of booleans."""
    n, m = scores.shape
    by_row = len(row_threshold) > 0
    count = 0
    for i in range(n):
        if by_row:
            t = row_threshold[i]
            for j in range(m):
                count += scores[i, j] >= t
        else:
            for j in range(m):
                count += scores[i, j] >= column_threshold[j]
    rows = np.empty(count, dtype=np.int64)
    cols = np.empty(count, dtype=np.int64)
    at = 0
    for i in range(n):
        for j in range(m):
            if scores[i, j] >= (row_threshold[i] if by_row else column_threshold[j]):
                rows[at] = i
                cols[at] = j
                at += 1
    return rows, cols


@nb.njit(nogil=True, cache=True)
def pair_dots(
    a_indptr, a_indices, a_data, arows, b_indptr, b_indices, b_data, brows, buf, out
):  # pragma: no cover
    """out[p] = row arows[p] of a . row brows[p] of b (CSR, sorted indices), in float64: each product of two
    float32 is exact, and they are added in column order, as `engine._pair_products` adds them, so the value
    is the same. Each run of pairs with the same row of a spreads it once into `buf` (float64, zeros, as long
    as a row), where each row of b then looks up its columns (zeros elsewhere add nothing)."""
    current = -1
    for p in range(len(arows)):
        row = arows[p]
        if row != current:
            if current >= 0:
                for k in range(a_indptr[current], a_indptr[current + 1]):
                    buf[a_indices[k]] = 0.0
            for k in range(a_indptr[row], a_indptr[row + 1]):
                buf[a_indices[k]] = np.float64(a_data[k])
            current = row
        acc = 0.0
        for k in range(b_indptr[brows[p]], b_indptr[brows[p] + 1]):
            acc += buf[b_indices[k]] * np.float64(b_data[k])
        out[p] = acc
    if current >= 0:
        for k in range(a_indptr[current], a_indptr[current + 1]):
            buf[a_indices[k]] = 0.0


@nb.njit(nogil=True, cache=True)
def top_products(
    a_indptr, a_indices, a_data, arows, b_indptr, b_indices, b_data, brows, out
):  # pragma: no cover
    """out[p] (int32, k columns, -1 where there are fewer): the columns of the k largest positive elementwise
    products of row arows[p] of a and row brows[p] of b (CSR, sorted indices), largest first, ties to the
    lower column; products compared in float32 (the float64 product, exact, rounded once: the precision of
    the TF-IDF rows themselves). The two rows are merged and each product goes through a k-slot insertion,
    instead of building every product (`engine._pair_products`, the reference) and sorting them."""
    k = out.shape[1]
    vals = np.empty(k, dtype=np.float32)
    for p in range(len(arows)):
        filled = 0
        i, i_end = a_indptr[arows[p]], a_indptr[arows[p] + 1]
        j, j_end = b_indptr[brows[p]], b_indptr[brows[p] + 1]
        while i < i_end and j < j_end:
            ca, cb = a_indices[i], b_indices[j]
            if ca < cb:
                i += 1
            elif ca > cb:
                j += 1
            else:
                v = np.float32(np.float64(a_data[i]) * np.float64(b_data[j]))
                i += 1
                j += 1
                # Columns come in increasing order: a product equal to a kept one goes after it.
                if v <= 0 or (filled == k and v <= vals[k - 1]):
                    continue
                pos = filled if filled < k else k - 1
                while pos > 0 and vals[pos - 1] < v:
                    if pos < k:
                        vals[pos] = vals[pos - 1]
                        out[p, pos] = out[p, pos - 1]
                    pos -= 1
                vals[pos] = v
                out[p, pos] = ca
                if filled < k:
                    filled += 1
        for q in range(filled, k):
            out[p, q] = -1


@nb.njit(nogil=True, cache=True)
def quantise(x, values, scale):  # pragma: no cover
    """values[i] = rint(x[i] / max|x[i]| * 127) as int8 and scale[i] = max|x[i]| (x float32, (n, d)): the float32
    steps of numpy's `engine.quantise_sentences`, one vector at a time (a row of zeros stays zeros)."""
    n, d = x.shape
    factor = np.float32(127.0)
    for i in range(n):
        top = np.float32(0.0)
        for k in range(d):
            top = max(top, abs(x[i, k]))
        divisor = top if top > 0 else np.float32(1.0)
        for k in range(d):
            values[i, k] = np.int8(np.rint((x[i, k] / divisor) * factor))
        scale[i] = np.float64(top)


@nb.njit(nogil=True, cache=True)
def spread_product(a_indptr, a_indices, a_data, b_indptr, b_indices, b_data, out):  # pragma: no cover
    """out += a @ b for CSR a (n, k) and b (k, m) into a dense (n, m) float32 `out`: each nonzero of a row of a
    spreads its share of b's row into the output row, in the order scipy's sparse product adds them (the same
    float32 sums), without the sparse result that scipy builds and then densifies."""
    for i in range(out.shape[0]):
        row = out[i]
        for p in range(a_indptr[i], a_indptr[i + 1]):
            j = a_indices[p]
            v = a_data[p]
            for q in range(b_indptr[j], b_indptr[j + 1]):
                row[b_indices[q]] += v * b_data[q]


_P1 = np.uint64(0x9E3779B185EBCA87)
_P2 = np.uint64(0xC2B2AE3D27D4EB4F)
_P3 = np.uint64(0x165667B19E3779F9)
_P4 = np.uint64(0x85EBCA77C2B2AE63)
_P5 = np.uint64(0x27D4EB2F165667C5)


@nb.njit(inline="always")
def _rotl(x, r):  # pragma: no cover
    return (x << np.uint64(r)) | (x >> np.uint64(64 - r))


@nb.njit(nogil=True, cache=True)
def hash_spans(data, starts, ends, out):  # pragma: no cover
    """out[i]: a 64-bit hash of the bytes data[starts[i]:ends[i]] (data uint8, out uint64), for many inputs in
    one call. The steps of xxHash64 (seed 0) for an input under 32 bytes, applied to inputs of any length: an
    8-byte word at a time (little-endian), then 4 bytes, then single bytes, and its final avalanche. Below 32
    bytes it is xxHash64 (the tests check its published values); beyond, not quite, but every byte still goes
    through the same multiply-rotate mixing."""
    for i in range(len(ends)):
        start = starts[i]
        stop = ends[i]
        h = _P5 + np.uint64(stop - start)
        p = start
        while p + 8 <= stop:
            w = np.uint64(0)
            for b in range(8):
                w |= np.uint64(data[p + b]) << np.uint64(8 * b)
            k = _rotl(w * _P2, 31) * _P1
            h = _rotl(h ^ k, 27) * _P1 + _P4
            p += 8
        if p + 4 <= stop:
            w = np.uint64(0)
            for b in range(4):
                w |= np.uint64(data[p + b]) << np.uint64(8 * b)
            h = _rotl(h ^ (w * _P1), 23) * _P2 + _P3
            p += 4
        while p < stop:
            h = _rotl(h ^ (np.uint64(data[p]) * _P5), 11) * _P1
            p += 1
        h ^= h >> np.uint64(33)
        h *= _P2
        h ^= h >> np.uint64(29)
        h *= _P3
        h ^= h >> np.uint64(32)
        out[i] = h


@nb.njit(nogil=True, cache=True)
def json_items(data, starts, ends):  # pragma: no cover
    """Where each item of the JSON array in `data` (UTF-8, as orjson writes it: no whitespace) begins and ends
    (starts[i], ends[i], exclusive), found by one pass that follows strings (their escapes included) and
    nesting; returns how many items there are (those beyond the length of `starts` and `ends` are counted,
    not written)."""
    n = 0
    depth = 0
    in_string = False
    escaped = False
    begin = 1
    for p in range(len(data)):
        c = data[p]
        if in_string:
            if escaped:
                escaped = False
            elif c == 92:  # backslash
                escaped = True
            elif c == 34:  # quote
                in_string = False
        elif c == 34:
            in_string = True
        elif c == 91 or c == 123:  # [ {
            depth += 1
        elif c == 93 or c == 125:  # ] }
            depth -= 1
            if depth == 0 and p > begin:  # the array's end closes its last item
                if n < len(starts):
                    starts[n] = begin
                    ends[n] = p
                n += 1
        elif c == 44 and depth == 1:  # a comma between two items
            if n < len(starts):
                starts[n] = begin
                ends[n] = p
            n += 1
            begin = p + 1
    return n
