"""SSD prior (default) boxes, as PaddlePaddle's prior_box / multi_box_head lay them out.

    ssd_priors(feature_sizes, image_size, min_sizes, max_sizes, aspect_ratios, steps,
               offset=0.5, flip=True, clip=False, min_max_order=False)
        -> [N, 4] float32 xyxy input pixels

Cells are row-major per map, maps in order; within a cell the priors are the expanded aspect
ratios [1, r1, 1/r1, r2, 1/r2, ...] at min_size (w = min * sqrt(r), h = min / sqrt(r)), then
the sqrt(min * max) square when the map has a max size; with min_max_order (Caffe's order,
Paddle's `min_max_aspect_ratios_order`) the two squares come first. A map may have several
min sizes (BlazeFace: 16 and 24 on the stride-8 map): the cell holds that layout once per
min size, in order. SSD300: 8,732 priors.

    density_priors(feature_sizes, image_size, fixed_sizes, densities, steps, ...)
        -> [N, 4] float32 xyxy input pixels (FaceBoxes: Paddle's density_prior_box)

Both are a per-map cell layout (ssd_cells, density_cells: [A, 4] (dx, dy, w, h) around the
cell centre) tiled over the map by grid_priors, which also lays them out on maps of any
(height, width) in a graph (the face detectors at each image's own size).
"""
import numpy as np
import tensorflow as tf


def expand_aspect_ratios(ratios, flip=True):
    """[1] + each ratio (and its inverse with flip), without repeats (Paddle's order)."""
    out = [1.0]
    for r in ratios:
        for value in ((r, 1.0 / r) if flip else (r,)):
            if all(abs(value - v) > 1e-6 for v in out):
                out.append(float(value))
    return out


def _sizes(value):
    """A map's min or max size(s) as a list: a number, a sequence, or None / ()."""
    if value is None:
        return []
    return [float(v) for v in value] if isinstance(value, (list, tuple)) else [float(value)]


def priors_per_cell(ratios, max_size, flip=True, min_size=0):
    """Priors per cell of a map: per min size, its aspect ratios (Paddle's prior_box), plus one
    square per max size. min_size / max_size: a number, a sequence (BlazeFace's several sizes
    on one map) or None."""
    count = max(len(_sizes(min_size)), 1)
    return count * len(expand_aspect_ratios(ratios, flip)) + len(_sizes(max_size))


def ssd_cells(min_sizes, max_sizes, aspect_ratios, flip=True, min_max_order=False):
    """Per map, its cell's priors as [A, 4] float64 (dx, dy, w, h): centred (dx = dy = 0),
    per min size its aspect ratios, then its max size's square (first with min_max_order)."""
    cells = []
    for k, mins in enumerate(min_sizes):
        tops = _sizes(max_sizes[k]) if max_sizes else []
        shapes = []
        for i, m in enumerate(_sizes(mins)):  # Paddle's prior_box: per min size
            cell = [(m * np.sqrt(r), m / np.sqrt(r))
                    for r in expand_aspect_ratios(aspect_ratios[k], flip)]
            if i < len(tops):
                side = np.sqrt(m * tops[i])
                cell.insert(1 if min_max_order else len(cell), (side, side))
            shapes += cell
        shapes = np.asarray(shapes, np.float64).reshape(-1, 2)
        cells.append(np.concatenate([np.zeros_like(shapes), shapes], 1))
    return cells


def density_cells(fixed_sizes, densities, steps, fixed_ratios=(1.0,)):
    """Per map, Paddle's density_prior_box cell as [A, 4] float64 (dx, dy, w, h): per fixed
    size s with density d, per ratio r, a d x d grid (row by row) of s * sqrt(r) x
    s / sqrt(r) boxes spaced shift = int(step) // d apart around the centre (the integer
    step and shift as Paddle computes them)."""
    cells = []
    for k, step in enumerate(steps):
        step_average = int(step)
        offsets = []
        for s, d in zip(_sizes(fixed_sizes[k]), densities[k]):
            shift = step_average // int(d)
            for r in fixed_ratios:
                w, h = s * np.sqrt(r), s / np.sqrt(r)
                start = -step_average / 2 + shift / 2
                for di in range(int(d)):
                    for dj in range(int(d)):
                        offsets.append((start + dj * shift, start + di * shift, w, h))
        cells.append(np.asarray(offsets, np.float64).reshape(-1, 4))
    return cells


def grid_priors(cells, steps, heights, widths, offset=0.5, clip_to=None):
    """Priors of maps [heights[k], widths[k]] (ints or scalar int tensors): each cell of map k
    (row-major) centred at ((col + offset) * steps[k], (row + offset) * steps[k]) holds the
    boxes of cells[k] ([A, 4] (dx, dy, w, h)); maps in order. clip_to: (height, width) of the
    image to clip to, or None. -> [N, 4] float32 tensor xyxy input pixels (computed in
    float64)."""
    boxes = []
    for cell, step, rows, cols in zip(cells, steps, heights, widths):
        cell = tf.constant(cell, tf.float64)
        ys = (tf.range(tf.cast(rows, tf.float64)) + offset) * float(step)
        xs = (tf.range(tf.cast(cols, tf.float64)) + offset) * float(step)
        cy, cx = tf.meshgrid(ys, xs, indexing="ij")
        centres = tf.reshape(tf.stack([cx, cy], -1), [-1, 1, 2]) + cell[None, :, :2]
        half = cell[None, :, 2:] / 2
        boxes.append(tf.reshape(tf.concat([centres - half, centres + half], -1), [-1, 4]))
    boxes = tf.concat(boxes, 0)
    if clip_to is not None:
        h, w = (tf.cast(v, tf.float64) for v in clip_to)
        boxes = tf.clip_by_value(boxes, 0.0, tf.stack([w, h, w, h]))
    return tf.cast(boxes, tf.float32)


def _steps(feature_sizes, image_size, steps):
    """steps[k], or image_size / feature_sizes[k] where it is None or 0."""
    return [steps[k] if steps and steps[k] else image_size / size
            for k, size in enumerate(feature_sizes)]


def ssd_priors(feature_sizes, image_size, min_sizes, max_sizes, aspect_ratios, steps=None,
               offset=0.5, flip=True, clip=False, min_max_order=False):
    """Priors for square maps of `feature_sizes` on an image_size x image_size input, as a
    numpy array.

    max_sizes[k] may be None / [] (no extra square on that map); steps[k] None or 0 means
    image_size / feature_sizes[k]. clip: clip to the image, as Paddle's `clip` option."""
    cells = ssd_cells(min_sizes, max_sizes, aspect_ratios, flip, min_max_order)
    return grid_priors(cells, _steps(feature_sizes, image_size, steps), feature_sizes,
                       feature_sizes, offset, (image_size,) * 2 if clip else None).numpy()


def density_priors(feature_sizes, image_size, fixed_sizes, densities, steps=None,
                   fixed_ratios=(1.0,), offset=0.5):
    """FaceBoxes' anchor densification, as Paddle's density_prior_box lays it out (cells:
    density_cells), clamped to the image as Paddle's kernel always does.
    -> [N, 4] float32 xyxy input pixels; per cell sum(len(fixed_ratios) * d * d) boxes."""
    steps = _steps(feature_sizes, image_size, steps)
    cells = density_cells(fixed_sizes, densities, steps, fixed_ratios)
    return grid_priors(cells, steps, feature_sizes, feature_sizes, offset,
                       (image_size, image_size)).numpy()


def density_priors_per_cell(densities, fixed_ratios=(1.0,)):
    """Boxes per cell of a map with these densities (one per fixed size)."""
    return len(fixed_ratios) * sum(int(d) ** 2 for d in densities)
