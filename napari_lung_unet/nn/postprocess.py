"""Turn a low-resolution lung probability into clean full-size labels: 1 = right lung, 2 = left lung.

The clean-up (components, hole filling, left/right split) runs at the network's resolution,
where it costs microseconds, and only the final resampling touches the full-size grid; a
20-Mpx radiograph would otherwise spend most of its time in ``ndimage.label``.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy import ndimage
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from ..images.labels import LEFT_LUNG, RIGHT_LUNG  # the one label convention; re-exported for older imports
from .preprocess import resize

MIN_COMPONENT_FRACTION = 0.02  # of the largest component; drops specks but keeps a small collapsed lung


def clean_mask(mask: np.ndarray) -> np.ndarray:
    """Keep at most the two largest components (ignoring specks) and fill their holes. Returns 0/1/2 labels."""
    labelled, n = ndimage.label(mask)
    if n == 0:
        return np.zeros(mask.shape, np.uint8)
    # pixel counts as float64, like the ndimage.sum_labels this replaces (~2 ms at 384²), so argsort breaks ties alike
    sizes = np.bincount(labelled.ravel(), minlength=n + 1)[1:].astype(np.float64)
    order = np.argsort(sizes)[::-1][:2]
    keep = [int(i) + 1 for i in order if sizes[i] >= MIN_COMPONENT_FRACTION * sizes[order[0]]]
    boxes = ndimage.find_objects(labelled, max_label=max(keep))
    parts = [_fill_holes_in_box(labelled, k, boxes[k - 1]) for k in keep]
    if len(parts) == 1:
        return _split_single(parts[0])
    out = np.zeros(mask.shape, np.uint8)
    # the patient's right lung is on the image's left in a standard PA view
    cols = [np.nonzero(p)[1].mean() for p in parts]
    right, left = (parts[0], parts[1]) if cols[0] <= cols[1] else (parts[1], parts[0])
    out[right] = RIGHT_LUNG
    out[left] = LEFT_LUNG
    return out


def _fill_holes_in_box(labelled: np.ndarray, k: int, box: tuple[slice, slice]) -> np.ndarray:
    """Component ``k`` with its holes filled, working only on its bounding box (a lung is ~1/4 of the image).

    Exact: the box is padded with one ring of background, and a background pixel inside the box
    reaches the image edge exactly when it reaches that ring (any path out crosses it, and every
    pixel outside the box sees the edge in a straight line).
    """
    part = np.zeros(labelled.shape, bool)
    crop = np.pad(labelled[box] == k, 1)
    part[box] = _fill_holes(crop)[1:-1, 1:-1]
    return part


def _fill_holes(part: np.ndarray) -> np.ndarray:
    """``ndimage.binary_fill_holes`` in one labelling pass: background not 4-connected to the edge is a hole.

    The scipy version propagates by repeated erosion, ~4 ms per lung at 256² against ~0.3 ms here.
    """
    background, _ = ndimage.label(~part)
    edge = np.concatenate((background[0], background[-1], background[:, 0], background[:, -1]))
    outside = np.zeros(int(background.max()) + 1, bool)
    outside[edge] = True
    outside[0] = True  # label 0 is the part itself
    return part | ~outside[background]


def _split_single(part: np.ndarray) -> np.ndarray:
    """One component: either one lung alone, or both lungs touching below the heart."""
    out = np.zeros(part.shape, np.uint8)
    width = part.shape[1]
    cols = np.nonzero(part.any(axis=0))[0]
    lo, hi = cols.min(), cols.max()
    if lo < width / 2 < hi and (hi - lo) > 0.5 * width:
        middle = slice(width // 3, 2 * width - 2 * width // 3)
        counts = part[:, middle].sum(axis=0)
        split = middle.start + int(np.argmin(counts))
        out[:, :split][part[:, :split]] = RIGHT_LUNG
        out[:, split:][part[:, split:]] = LEFT_LUNG
    else:
        out[part] = RIGHT_LUNG if cols.mean() < width / 2 else LEFT_LUNG
    return out


def labels_from_probability(prob: np.ndarray, out_shape: tuple[int, int], threshold: float = 0.5) -> np.ndarray:
    """Low-res probability (h×w) -> cleaned uint8 labels of ``out_shape``."""
    small_labels = clean_mask(prob > threshold)
    if not small_labels.any():
        return np.zeros(out_shape, np.uint8)
    # a cleaned probability: removed specks forced below threshold, filled holes forced above
    cleaned = prob.astype(np.float32, copy=True)
    above = prob > threshold
    cleaned[(small_labels > 0) & ~above] = 1.0
    cleaned[(small_labels == 0) & above] = 0.0
    if out_shape[0] >= prob.shape[0] and out_shape[1] >= prob.shape[1]:
        # upsampling looks the side up only next to lung pixels: the lungs' box grown by 2 is enough
        side = _nearest_lung(small_labels, margin=2)
        labels, pieces = _upsample_labels(cleaned, side, small_labels, out_shape, threshold)
        return labels if pieces <= 2 else _one_component_per_lung(labels)
    # the antialiased shrink samples the side map far from the lungs: everywhere
    return _one_component_per_lung(_resize_labels(cleaned, _nearest_lung(small_labels), out_shape, threshold))


def _nearest_lung(small_labels: np.ndarray, margin: int | None = None) -> np.ndarray:
    """The label of the nearest lung pixel, so bilinear edges never fall between labels.

    With ``margin``, only inside the lungs' bounding box grown by ``margin`` (0 elsewhere): the
    distance transform, the largest cost of post-processing, then covers about half the image.
    Every lung pixel lies in the box, so each pixel there finds the same nearest one.
    """
    box: tuple[slice, ...] = (slice(None), slice(None))
    if margin is not None:
        rows, cols = np.nonzero(small_labels.any(axis=1))[0], np.nonzero(small_labels.any(axis=0))[0]
        h, w = small_labels.shape
        box = (slice(max(rows[0] - margin, 0), min(rows[-1] + margin + 1, h)),
               slice(max(cols[0] - margin, 0), min(cols[-1] + margin + 1, w)))
    crop = small_labels[box]
    _, (ri, ci) = ndimage.distance_transform_edt(crop == 0, return_indices=True)
    side = np.zeros_like(small_labels)
    side[box] = crop[ri, ci]
    return side


def _resize_labels(cleaned: np.ndarray, side: np.ndarray, out_shape: tuple[int, int], threshold: float) -> np.ndarray:
    """The plain path: resample the probability and the side map to full size, then threshold.

    Serves any shape (shrinking needs the antialiased resize) and is the reference that
    :func:`_upsample_labels` must match; for a 20-Mpx output it costs several full-size float maps.
    """
    full_prob = resize(cleaned, out_shape)
    full_side = resize(side.astype(np.float32), out_shape, mode="nearest")
    labels = torch.where(full_prob > threshold, full_side, torch.zeros((), dtype=full_side.dtype))
    return labels.to(torch.uint8).numpy()


def _source_indices(out_len: int, in_len: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per output index: lower bilinear source index, the upper source's weight, and the nearest-mode index.

    Follows torch's CPU ``interpolate`` (bilinear, align_corners=False; legacy nearest) in float32,
    so :func:`_upsample_labels` and :func:`_resize_labels` agree pixel for pixel up to rounding.
    """
    scale = np.float32(in_len / out_len)
    dst = np.arange(out_len, dtype=np.float32)
    src = np.maximum(scale * (dst + np.float32(0.5)) - np.float32(0.5), np.float32(0.0))
    lower = np.minimum(src.astype(np.int64), in_len - 1)
    upper_weight = np.clip(src - lower, 0.0, 1.0).astype(np.float32)
    nearest = np.minimum(np.floor(dst * scale).astype(np.int64), in_len - 1)
    return lower, upper_weight, nearest


_CHUNK_PIXELS = 1 << 21  # border-cell pixels interpolated at once: bounds the temporaries (~50 MB) on a noisy map
_SIDES = (("left", "right", 0, -1), ("right", "left", 0, 1), ("top", "bottom", -1, 0), ("bottom", "top", 1, 0))


def _upsample_labels(
    cleaned: np.ndarray, side: np.ndarray, small_labels: np.ndarray, out_shape: tuple[int, int], threshold: float
) -> tuple[np.ndarray, int]:
    """Upsample (bilinear probability > threshold, nearest side) straight to uint8 labels; also count pieces.

    A bilinear value is a convex mix of the 4 low-res samples around it, so a cell whose 4 corner
    samples share one label is that label throughout: those cells (all but a band along the lung
    borders) are filled by repeating rows and columns of the low-res grid. Only border cells are
    interpolated, and the 4-connected piece count comes from a graph of cells and of the pieces
    inside border cells, instead of from labelling the full-size image (~100 ms at 20 Mpx).
    """
    h, w = cleaned.shape
    H, W = out_shape
    row0, row_wt, row_near = _source_indices(H, h)
    col0, col_wt, col_near = _source_indices(W, w)
    row_count = np.bincount(row0, minlength=h)  # output rows per cell row; ≥ 1 when upsampling
    col_count = np.bincount(col0, minlength=w)
    row_start = np.cumsum(row_count) - row_count
    col_start = np.cumsum(col_count) - col_count
    row1 = np.minimum(np.arange(h) + 1, h - 1)
    col1 = np.minimum(np.arange(w) + 1, w - 1)

    lab = small_labels
    uniform = (lab == lab[:, col1]) & (lab == lab[row1]) & (lab == lab[row1][:, col1])
    out = np.repeat(np.repeat(np.where(uniform, lab, 0).astype(np.uint8), col_count, axis=1), row_count, axis=0)

    # graph nodes: 1..K are 4-connected runs of whole-lung cells, then each piece inside a border cell
    uniform_ids, next_id = ndimage.label(uniform & (lab > 0))
    one_block_at_a_time = np.zeros((3, 3, 3), bool)
    one_block_at_a_time[1] = ndimage.generate_binary_structure(2, 1)
    mixed_rows, mixed_cols = np.nonzero(~uniform)
    block_h, block_w = int(row_count.max()), int(col_count.max())
    bounds: dict[str, list[np.ndarray]] = {name: [] for name, *_ in _SIDES}
    chunk = max(1, _CHUNK_PIXELS // (block_h * block_w))
    for start in range(0, len(mixed_rows), chunk):
        a, b = mixed_rows[start:start + chunk], mixed_cols[start:start + chunk]
        # every block padded to the tallest and widest cell; the padding is masked out
        row_ok = np.arange(block_h) < row_count[a][:, None]
        col_ok = np.arange(block_w) < col_count[b][:, None]
        rows = np.minimum(row_start[a][:, None] + np.arange(block_h), H - 1)
        cols = np.minimum(col_start[b][:, None] + np.arange(block_w), W - 1)
        wy, wx = row_wt[rows][:, :, None], col_wt[cols][:, None, :]
        top = (1 - wx) * cleaned[a, b][:, None, None] + wx * cleaned[a, col1[b]][:, None, None]
        bottom = (1 - wx) * cleaned[row1[a], b][:, None, None] + wx * cleaned[row1[a], col1[b]][:, None, None]
        valid = row_ok[:, :, None] & col_ok[:, None, :]
        fg = ((1 - wy) * top + wy * bottom > threshold) & valid
        block = np.where(fg, side[row_near[rows][:, :, None], col_near[cols][:, None, :]], 0).astype(np.uint8)
        out[np.broadcast_to(rows[:, :, None], valid.shape)[valid], np.broadcast_to(cols[:, None, :], valid.shape)[valid]] = block[valid]

        pieces, n_pieces = ndimage.label(fg, structure=one_block_at_a_time)
        pieces[fg] += next_id
        next_id += n_pieces
        first = np.arange(len(a))[:, None]
        bounds["left"].append(pieces[:, :, 0])
        bounds["right"].append(pieces[first, np.arange(block_h), (col_count[b] - 1)[:, None]])
        bounds["top"].append(pieces[:, 0, :])
        bounds["bottom"].append(pieces[first, (row_count[a] - 1)[:, None], np.arange(block_w)])
    if not len(mixed_rows):
        return out, next_id
    edges = _boundary_edges(
        {name: np.concatenate(parts) for name, parts in bounds.items()}, mixed_rows, mixed_cols, uniform_ids, row_count, col_count
    )
    graph = coo_matrix((np.ones(len(edges[0]), np.int8), edges), shape=(next_id + 1, next_id + 1))
    n_components, _ = connected_components(graph, directed=False)
    return out, n_components - 1  # node 0 stands for background and has no edges


def _boundary_edges(
    bounds: dict[str, np.ndarray],
    mixed_rows: np.ndarray,
    mixed_cols: np.ndarray,
    uniform_ids: np.ndarray,
    row_count: np.ndarray,
    col_count: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Node pairs that touch across a border cell's edges: pixel (r, c) beside (r, c ± 1) or (r ± 1, c)."""
    h, w = uniform_ids.shape
    mixed_index = np.full((h, w), -1, np.int64)
    mixed_index[mixed_rows, mixed_cols] = np.arange(len(mixed_rows))
    sources, targets = [], []
    for name, facing, da, db in _SIDES:
        na, nb = mixed_rows + da, mixed_cols + db
        inside = np.nonzero((na >= 0) & (na < h) & (nb >= 0) & (nb < w))[0]
        na, nb, ours = na[inside], nb[inside], bounds[name][inside]
        length = row_count[mixed_rows[inside]] if db else col_count[mixed_cols[inside]]
        whole = uniform_ids[na, nb][:, None] * (np.arange(ours.shape[1]) < length[:, None])
        other = mixed_index[na, nb][:, None]
        theirs = np.where(other >= 0, bounds[facing][np.maximum(other[:, 0], 0)], whole)
        touch = (ours > 0) & (theirs > 0)
        sources.append(ours[touch])
        targets.append(theirs[touch])
    return np.concatenate(sources), np.concatenate(targets)


def _one_component_per_lung(labels: np.ndarray) -> np.ndarray:
    """Resampling can cut a thin low-res neck into separate pieces; keep the largest piece of each lung.

    A full-size labelling pass (~30 ms at 5 Mpx); on the upsampling path it runs only when the cell
    graph of :func:`_upsample_labels` has already counted more than two pieces.
    """
    _, n = ndimage.label(labels > 0)
    if n <= 2:
        return labels
    for value in (RIGHT_LUNG, LEFT_LUNG):
        pieces, count = ndimage.label(labels == value)
        if count > 1:
            sizes = np.bincount(pieces.ravel())
            sizes[0] = 0
            labels[(pieces > 0) & (pieces != int(np.argmax(sizes)))] = 0
    return labels
