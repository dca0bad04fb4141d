"""A vectorised numpy renderer of stylised frontal faces driven by FACS action units.

Public API (also used to build the synthetic "web" pre-training pool for the tiny CLIP):

- :func:`sample_identity` draws a random :class:`Identity` (head shape, skin tone, eyes,
  brows, nose, mouth, hair, clothes, background) from a numpy ``Generator``.
- :func:`render_face` renders one RGB ``uint8`` frame from an identity and an AU vector.
- :func:`render_frames` renders a whole clip at once, (T, 17) AUs → (T, H, W, 3) ``uint8``;
  :func:`render_yuv420p` gives the same frames packed as ``yuv420p`` planes for an encoder.

How it works: every shape is a signed distance field evaluated on pixel-centre coordinates
in *face units* (the canvas spans ``[-EXTENT, EXTENT]`` in both axes, ``v`` grows downward,
the head is about 1.2 units wide). Coverage ``clip(0.5 - sdf * pixels_per_unit, 0, 1)`` gives
one-pixel anti-aliased edges. Frames of a clip are rendered together in chunks of
:data:`CHUNK`, as float32 arrays of shape ``(channel, frame, y, x)``; per-frame parameters
(AUs, pose) are ``(frame, 1, 1)`` arrays that broadcast, and each face part is evaluated only
inside its bounding box, on a contiguous copy of those pixels. The camera is static:
background, neck and shirt are cached per identity; the head and everything on it moves
with the pose. Head roll is applied rigidly per part (each part's anchor rotates about the
face centre, the part keeps its orientation): for the few degrees of roll used this reads
as a tilt and keeps the coordinates separable. The output does not depend on the chunking.

Each action unit moves specific geometry: AU1/AU2 raise the inner/outer brow and add
forehead lines, AU4 lowers and knits the brows (vertical furrows), AU5 opens and AU7
tightens the lids, AU6 lifts the cheeks and lower lids (crow's feet), AU9 wrinkles the nose
and lifts the nostrils, AU10 raises the upper lip, AU12 pulls the lip corners up and out,
AU14 dimples one corner (and makes a co-occurring AU12 one-sided: contempt), AU15 pulls the
corners down, AU17 pushes the lower lip up and creases the chin, AU20 stretches the lips,
AU23 thins and narrows them, AU25 parts them, AU26 drops the jaw, AU45 closes the eyes.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from emobench.data.synth.aus import AU_INDEX, N_AUS

#: Half the canvas side, in face units.
EXTENT = 1.12

#: Hair styles :func:`sample_identity` draws from.
HAIR_STYLES: tuple[str, ...] = ("short", "long", "bun", "bald", "curly")

Color = tuple[float, float, float]

_SKIN_ANCHORS = np.array(
    [
        (0.98, 0.86, 0.77),
        (0.94, 0.77, 0.64),
        (0.82, 0.62, 0.47),
        (0.65, 0.46, 0.32),
        (0.46, 0.31, 0.21),
        (0.31, 0.21, 0.15),
    ]
)
_HAIR_COLORS = np.array(
    [
        (0.07, 0.06, 0.06),
        (0.20, 0.13, 0.08),
        (0.40, 0.26, 0.15),
        (0.83, 0.70, 0.44),
        (0.58, 0.24, 0.10),
        (0.66, 0.65, 0.63),
    ]
)
_IRIS_COLORS = np.array([(0.30, 0.18, 0.09), (0.20, 0.38, 0.62), (0.28, 0.45, 0.28), (0.1,) * 3])


@dataclass(frozen=True)
class Identity:
    """The static appearance of one subject. Lengths are in face units; colours RGB in [0, 1].

    Hashable, so renders can cache per-identity layers.
    """

    head_w: float  # half width of the head
    head_h: float  # half height of the head
    jaw: float  # chin taper, 0 (round) .. 0.35 (narrow chin)
    skin: Color
    eye_dx: float  # horizontal distance of each eye centre from the midline
    eye_y: float  # vertical position of the eye centres
    eye_w: float  # half width of an eye
    eye_open: float  # lid opening as a fraction of the eye half width
    iris: Color
    brow_gap: float  # brow height above the eye centre
    brow_thick: float
    brow_arch: float
    brow_color: Color
    nose_y: float
    nose_w: float
    mouth_y: float
    mouth_w: float  # half width of the mouth at rest
    lip_up: float  # upper lip thickness
    lip_lo: float  # lower lip thickness
    lip_color: Color
    ear: float  # ear size factor
    hair_style: str
    hair_color: Color
    hairline: float  # height of the hairline above the face centre
    shirt: Color
    bg_top: Color
    bg_bottom: Color


def _color(arr: np.ndarray) -> Color:
    c = np.clip(arr, 0.0, 1.0)
    return (round(float(c[0]), 4), round(float(c[1]), 4), round(float(c[2]), 4))


def sample_identity(rng: np.random.Generator) -> Identity:
    """Draw a random identity. The same generator state always gives the same identity."""
    u = rng.uniform
    t = u(0, len(_SKIN_ANCHORS) - 1)
    i = min(int(t), len(_SKIN_ANCHORS) - 2)
    skin = _SKIN_ANCHORS[i] + (t - i) * (_SKIN_ANCHORS[i + 1] - _SKIN_ANCHORS[i])
    skin = skin + u(-0.03, 0.03, 3)
    hair = _HAIR_COLORS[rng.integers(len(_HAIR_COLORS))] * u(0.85, 1.15) + u(-0.03, 0.03, 3)
    lip = skin + u(0.35, 0.6) * (np.array([0.72, 0.30, 0.32]) - skin)
    bg_top = u(0.2, 0.9, 3)
    head_w = u(0.55, 0.66)
    eye_w = u(0.085, 0.115)
    return Identity(
        head_w=round(head_w, 4),
        head_h=round(u(0.76, 0.86), 4),
        jaw=round(u(0.0, 0.35), 4),
        skin=_color(skin),
        eye_dx=round(u(0.20, 0.25), 4),
        eye_y=round(u(-0.07, 0.0), 4),
        eye_w=round(eye_w, 4),
        eye_open=round(u(0.42, 0.62), 4),
        iris=_color(_IRIS_COLORS[rng.integers(len(_IRIS_COLORS))] + u(-0.04, 0.04, 3)),
        brow_gap=round(u(0.115, 0.15), 4),
        brow_thick=round(u(0.028, 0.05), 4),
        brow_arch=round(u(0.0, 0.04), 4),
        brow_color=_color(hair * u(0.5, 0.9)),
        nose_y=round(u(0.17, 0.24), 4),
        nose_w=round(u(0.06, 0.09), 4),
        mouth_y=round(u(0.40, 0.46), 4),
        mouth_w=round(u(0.14, 0.19), 4),
        lip_up=round(u(0.022, 0.036), 4),
        lip_lo=round(u(0.03, 0.048), 4),
        lip_color=_color(lip),
        ear=round(u(0.85, 1.15), 4),
        hair_style=HAIR_STYLES[int(rng.integers(len(HAIR_STYLES)))],
        hair_color=_color(hair),
        hairline=round(u(0.42, 0.52), 4),
        shirt=_color(u(0.1, 0.9, 3)),
        bg_top=_color(bg_top),
        bg_bottom=_color(bg_top * u(0.55, 1.0)),
    )


# ----------------------------------------------------------------------------- helpers


@functools.lru_cache(maxsize=8)
def _grid(size: int) -> np.ndarray:
    """Pixel-centre coordinates along one axis, in face units (float32)."""
    return ((np.arange(size, dtype=np.float64) + 0.5) * (2 * EXTENT / size) - EXTENT).astype(
        np.float32
    )


def _rgb(c: Sequence[float], scale: float = 1.0) -> tuple[float, float, float]:
    """An RGB colour in [0, 1] as 0..255 floats, optionally darkened by ``scale``."""
    return (c[0] * 255.0 * scale, c[1] * 255.0 * scale, c[2] * 255.0 * scale)


def _cov(sdf: np.ndarray, k: float) -> np.ndarray:
    """Anti-aliased coverage from a signed distance (face units); reuses ``sdf``'s memory.

    ``k`` is pixels per face unit: the edge ramps from 0 to 1 over one pixel.
    """
    sdf *= -k
    sdf += 0.5
    np.maximum(sdf, 0.0, out=sdf)
    np.minimum(sdf, 1.0, out=sdf)
    return sdf


def _soft(sdf: np.ndarray, width: float) -> np.ndarray:
    """Coverage with a soft edge ``width`` face units wide (blush, shading)."""
    return _cov(sdf, 1.0 / width)


def _ellipse_sdf(du: np.ndarray, dv: np.ndarray, a, b) -> np.ndarray:
    """Approximate signed distance to an axis-aligned ellipse with half axes ``a``, ``b``."""
    q = np.square(du / a) + np.square(dv / b)
    np.sqrt(q, out=q)
    q -= 1.0
    # min() keeps Python floats weak; a float64 NumPy scalar would upcast the whole array
    q *= min(a, b) if isinstance(a, float) and isinstance(b, float) else np.minimum(a, b)
    return q


class _Patch:
    """A feature's bounding box: contiguous working copy of the pixels plus coordinates.

    ``u`` is (T, 1, w) and ``v`` is (T, h, 1): separable, so per-axis terms are cheap and
    the first op that mixes them yields contiguous (T, h, w) arrays. Blending happens on the
    contiguous copy (several times faster than on strided views of the frames);
    :meth:`commit` writes it back. :meth:`rows` gives a sub-patch sharing the copy.
    """

    __slots__ = ("img", "ys", "xs", "u", "v", "rgb", "_buf")

    def __init__(
        self,
        img: np.ndarray,
        ys: slice,
        xs: slice,
        u: np.ndarray,
        v: np.ndarray,
        rgb: np.ndarray | None = None,
    ) -> None:
        self.img, self.ys, self.xs, self.u, self.v = img, ys, xs, u, v
        self.rgb = img[:, :, ys, xs].copy() if rgb is None else rgb
        self._buf: np.ndarray | None = None

    def blend(self, cov: np.ndarray, color: Sequence) -> None:
        """Composite ``color`` (0..255 per channel; scalars or broadcastable arrays)."""
        shape = self.rgb.shape[1:]
        if self._buf is None or self._buf.shape != shape:
            self._buf = np.empty(shape, dtype=np.float32)
        buf = self._buf
        for c in range(3):
            p = self.rgb[c]
            np.subtract(color[c], p, out=buf)
            buf *= cov
            p += buf

    def rows(self, v0: float, v1: float) -> _Patch | None:
        """The sub-patch of rows whose ``v`` may fall in [v0, v1] in any frame (a view)."""
        vv = self.v[:, :, 0]
        inside = np.nonzero(((vv >= v0) & (vv <= v1)).any(axis=0))[0]
        if inside.size == 0:
            return None
        r0, r1 = max(int(inside[0]) - 1, 0), min(int(inside[-1]) + 2, vv.shape[1])
        return _Patch(self.img, self.ys, self.xs, self.u, self.v[:, r0:r1], self.rgb[:, :, r0:r1])

    def commit(self) -> None:
        self.img[:, :, self.ys, self.xs] = self.rgb


class _Chunk:
    """Per-chunk render state: frames, face coordinates under the pose, AU intensities."""

    def __init__(
        self,
        img: np.ndarray,
        ident: Identity,
        aus: np.ndarray,
        poses: np.ndarray,
        size: int,
    ) -> None:
        n = aus.shape[0]
        self.img, self.ident, self.size = img, ident, size
        self.k = size / (2 * EXTENT)
        g = _grid(size)
        self.sx = poses[:, 0] * np.float32(2 * EXTENT)  # image fractions → face units, (T,)
        self.sy = poses[:, 1] * np.float32(2 * EXTENT)
        roll = np.deg2rad(poses[:, 2]).astype(np.float32)
        self.cs1, self.sn = np.cos(roll) - np.float32(1.0), np.sin(roll)
        self.rolled = bool(np.any(roll))
        self.U = g.reshape(1, 1, size) - self.sx.reshape(n, 1, 1)  # (T, 1, W)
        self.V = g.reshape(1, size, 1) - self.sy.reshape(n, 1, 1)  # (T, H, 1)
        #: AU number → per-frame intensities (T, 1, 1)
        self.a = {
            au: np.ascontiguousarray(aus[:, i]).reshape(n, 1, 1) for au, i in AU_INDEX.items()
        }

    def patch(
        self, u0: float, u1: float, v0: float, v1: float, anchor: tuple[float, float]
    ) -> _Patch | None:
        """The patch covering face box [u0, u1] × [v0, v1] in every frame, or None if off-image.

        Roll is applied rigidly per part: the part's ``anchor`` rotates about the face
        centre while the part keeps its orientation. For the few degrees of head roll this
        reads as a tilt, and it keeps the coordinates separable (fast).
        """
        ox, oy = self.sx, self.sy  # where the part's face box sits in each frame
        if self.rolled:
            au, av = anchor
            du = self.cs1 * au - self.sn * av
            dv = self.sn * au + self.cs1 * av
            ox, oy = ox + du, oy + dv
        k, n = self.k, self.size
        x0 = max(0, math.floor((u0 + float(ox.min()) + EXTENT) * k - 1))
        x1 = min(n, math.ceil((u1 + float(ox.max()) + EXTENT) * k + 1))
        y0 = max(0, math.floor((v0 + float(oy.min()) + EXTENT) * k - 1))
        y1 = min(n, math.ceil((v1 + float(oy.max()) + EXTENT) * k + 1))
        if x0 >= x1 or y0 >= y1:
            return None
        ys, xs = slice(y0, y1), slice(x0, x1)
        u, v = self.U[:, :, xs], self.V[:, ys, :]
        if self.rolled:
            u = u - du.reshape(-1, 1, 1)
            v = v - dv.reshape(-1, 1, 1)
        return _Patch(self.img, ys, xs, u, v)


@functools.lru_cache(maxsize=32)
def _static_layer(identity: Identity, size: int) -> np.ndarray:
    """Background, neck and shirt (the camera does not move): (3, H, W) float32, 0..255."""
    g = _grid(size)
    x, y = g[None, :], g[:, None]
    t = np.clip((y + EXTENT) / (2 * EXTENT), 0, 1)
    img = np.empty((3, size, size), dtype=np.float32)
    top, bottom = _rgb(identity.bg_top), _rgb(identity.bg_bottom)
    for c in range(3):
        img[c] = top[c] + t * (bottom[c] - top[c])
    # a soft light patch so that backgrounds are not flat
    img *= 1.0 + np.clip(1.0 - np.hypot(x + 0.6, y + 0.7) / 1.2, 0, 1)[None] * 0.12
    k = size / (2 * EXTENT)
    shirt = _cov(_ellipse_sdf(x, y - 1.55, identity.head_w * 1.9, 0.62), k)
    neck = _cov(np.maximum(np.abs(x) - identity.head_w * 0.55, np.abs(y - 0.8) - 0.6), k)
    for cov, col in ((neck, _rgb(identity.skin, 0.82)), (shirt, _rgb(identity.shirt))):
        for c in range(3):
            img[c] += cov * (col[c] - img[c])
    img.flags.writeable = False  # shared through the cache
    return img


# ----------------------------------------------------------------------------- face parts
# Each part draws itself from the chunk's AUs. Lengths are face units; v grows downward.


@dataclass(frozen=True)
class _Mouth:
    """Per-frame mouth geometry, shared by the head (jaw drop), folds and lips."""

    gap: np.ndarray  # lip opening
    wl: np.ndarray  # half width, image-left side
    wr: np.ndarray  # half width, image-right side
    corner_l: np.ndarray  # vertical corner offset (negative = up)
    corner_r: np.ndarray
    jaw_drop: np.ndarray


def _mouth_geometry(ch: _Chunk) -> _Mouth:
    a, mw = ch.a, ch.ident.mouth_w
    gap = np.minimum(0.02 * a[25] + 0.2 * a[26] + 0.012 * a[10], 0.22)
    a12r = np.minimum(a[12] + 0.35 * a[14], 1.0)  # image-right corner (AU14's side)
    a12l = a[12] * (1.0 - 0.85 * a[14])  # AU14 makes a co-occurring AU12 one-sided
    common = 1.0 + 0.3 * a[20] - 0.14 * a[23] - 0.06 * a[26] + 0.06 * a[25]
    return _Mouth(
        gap=gap,
        wl=mw * (common + 0.22 * a12l),
        wr=mw * (common + 0.22 * a12r - 0.05 * a[14]),
        corner_l=-0.075 * a12l + 0.07 * a[15] + 0.02 * a[20],
        corner_r=-0.075 * a12r + 0.07 * a[15] + 0.02 * a[20] - 0.012 * a[14],
        jaw_drop=0.65 * gap,  # the lower lip and the chin move down with the jaw
    )


def _head_and_hair(ch: _Chunk, mouth: _Mouth) -> None:
    """Hair behind the head, ears, the head, then hair on top, in one shared patch.

    The head is an ellipse with a tapered chin whose lower half stretches with the jaw
    drop. Hair styles: short cap, long (down to the shoulders), bun, bald (side tufts),
    curly (a wide halo).
    """
    ident = ch.ident
    hw, hh, style = ident.head_w, ident.head_h, ident.hair_style
    hair = _rgb(ident.hair_color)
    back = {"long": (0.12, hw * 1.32, hh * 1.12, 0.95), "curly": (-0.12, hw * 1.45, hh * 1.1, 0.2)}
    cap_v, cap_a, cap_b = -0.03, hw * 1.07, hh * 1.06
    top = cap_v - cap_b - (0.25 if style == "bun" else 0.0)
    half = cap_a
    bottom = hh + float(mouth.jaw_drop.max())
    if style in back:
        bv, ba, bb, vmax = back[style]
        half, top, bottom = max(half, ba), min(top, bv - bb), max(bottom, min(bv + bb, vmax))
    p = ch.patch(-half, half, top, bottom, (0.0, 0.0))
    if not p:
        return
    k = ch.k
    if style in back:
        d = np.maximum(_ellipse_sdf(p.u, p.v - bv, ba, bb), p.v - vmax)
        p.blend(_cov(d, k), hair)
    ey, ea, eb = ident.eye_y + 0.1, 0.065 * ident.ear, 0.12 * ident.ear
    ears = p.rows(ey - eb - 0.02, ey + eb + 0.02)
    if ears:
        d = _ellipse_sdf(np.abs(ears.u) - hw * 0.97, ears.v - ey, ea, eb)
        ears.blend(_cov(d, k), _rgb(ident.skin, 0.9))
    vn = p.v / np.where(p.v > 0, hh + mouth.jaw_drop, np.float32(hh))  # (T, h, 1)
    inv_w = 1.0 / (hw * (1.0 - ident.jaw * np.square(np.clip(vn, 0.0, 1.0))))
    q = np.square(p.u * inv_w)
    q += np.square(vn)
    np.sqrt(q, out=q)
    q -= 1.0
    q *= hw * 0.9
    p.blend(_cov(q, k), _rgb(ident.skin))
    cap = p.rows(top - 0.05, 0.3)
    if cap:
        u, v = cap.u, cap.v
        d = _ellipse_sdf(u, v - cap_v, cap_a, cap_b)
        if style == "bald":  # side tufts only
            np.maximum(d, np.maximum(np.abs(v + 0.1) - 0.2, hw * 0.8 - np.abs(u)), out=d)
        else:
            np.maximum(d, v - (0.55 * np.square(u) - ident.hairline), out=d)
            if style == "bun":
                np.minimum(d, np.sqrt(np.square(u) + np.square(v + hh * 1.08)) - 0.19, out=d)
        cap.blend(_cov(d, k), hair)
    p.commit()


def _forehead(ch: _Chunk) -> None:
    """Forehead lines: AU1 deepens the centre, AU2 the sides; they rise with the brows."""
    a, ident = ch.a, ch.ident
    if float((a[1] + a[2]).max()) <= 0.0:
        return
    brow0 = ident.eye_y - ident.brow_gap
    p = ch.patch(-0.24, 0.24, brow0 - 0.27, brow0 - 0.1, (0.0, brow0 - 0.18))
    if not p:
        return
    au = np.abs(p.u) * (1 / 0.24)
    alpha = np.clip(a[1] * (1.0 - au) + a[2] * au, 0, 1) * 0.6  # (T, 1, w)
    bend = 0.35 * np.square(p.u) - 0.015 * (a[1] + a[2])
    side = np.abs(p.u) - 0.22
    if ident.hair_style != "bald":  # stop the lines 0.03 below the hairline
        side = np.maximum(side, (0.55 * np.square(p.u) - ident.hairline + 0.03) - p.v)
    for i in range(2):
        d = np.abs(p.v - (brow0 - 0.15 - 0.045 * i) - bend)
        d -= 0.008
        np.maximum(d, side, out=d)
        p.blend(_cov(d, ch.k) * alpha, _rgb(ident.skin, 0.55))
    p.commit()


def _furrows(ch: _Chunk) -> None:
    """Vertical lines between the brows (AU4)."""
    a, ident = ch.a, ch.ident
    if float(a[4].max()) <= 0.0:
        return
    brow0 = ident.eye_y - ident.brow_gap
    p = ch.patch(-0.06, 0.06, brow0 - 0.02, brow0 + 0.1, (0.0, brow0 + 0.04))
    if p:
        d = np.maximum(np.abs(np.abs(p.u) - 0.028) - 0.007, np.abs(p.v - brow0 - 0.05) - 0.04)
        p.blend(_cov(d, ch.k) * (0.7 * a[4]), _rgb(ident.skin, 0.55))
        p.commit()


def _cheeks(ch: _Chunk) -> None:
    """Soft cheek blobs that rise and redden with AU6."""
    a, ident = ch.a, ch.ident
    col = _rgb([0.8 * ident.skin[0] + 0.16, 0.8 * ident.skin[1] + 0.02, 0.8 * ident.skin[2] + 0.02])
    alpha = 0.12 + 0.4 * a[6]
    cv = ident.eye_y + 0.2 - 0.065 * a[6]
    rb = 0.075 + 0.015 * a[6]
    for s in (-1.0, 1.0):
        cu = s * (ident.eye_dx + 0.03)
        p = ch.patch(
            cu - 0.17, cu + 0.17, ident.eye_y + 0.02, ident.eye_y + 0.33, (cu, ident.eye_y + 0.2)
        )
        if p:
            p.blend(_soft(_ellipse_sdf(p.u - cu, p.v - cv, 0.11, rb), 0.08) * alpha, col)
            p.commit()


def _folds(ch: _Chunk, mouth: _Mouth) -> None:
    """Nasolabial folds from the nose wings to the mouth corners (AU9, AU10, AU12, AU6)."""
    a, ident = ch.a, ch.ident
    strength = np.clip(0.8 * a[12] + 0.7 * a[10] + 0.7 * a[9] + 0.3 * a[6], 0, 1)
    alpha = 0.1 + 0.55 * strength
    v0 = ident.nose_y - 0.015 - 0.02 * a[9]
    u0 = ident.nose_w + 0.03
    for s, wide, corner in ((-1.0, mouth.wl, mouth.corner_l), (1.0, mouth.wr, mouth.corner_r)):
        v1 = ident.mouth_y + 0.02 + 0.6 * corner
        u1 = wide + 0.045
        reach = float(u1.max()) + 0.03
        anchor = (s * 0.5 * (ident.nose_w + ident.mouth_w), 0.5 * (ident.nose_y + ident.mouth_y))
        p = ch.patch(min(s * 0.05, s * reach), max(s * 0.05, s * reach),
                     float(v0.min()) - 0.02, float(v1.max()) + 0.02, anchor)  # fmt: skip
        if not p:
            continue
        span = v1 - v0
        t = (p.v - v0) / span  # (T, h, 1)
        cu = u0 + (u1 - u0) * t + 0.05 * t * (1.0 - t)
        d = np.abs(s * p.u - cu)
        d -= 0.008
        np.maximum(d, np.abs(t - 0.5) * span - 0.5 * span, out=d)
        p.blend(_cov(d, ch.k) * alpha, _rgb(ident.skin, 0.55))
        p.commit()


def _eyes(ch: _Chunk) -> None:
    """Lids open (AU5), tighten (AU7), lift from below (AU6), lower (AU4), close (AU45)."""
    a, ident, k = ch.a, ch.ident, ch.k
    ew, eo = ident.eye_w, ident.eye_open
    up = ew * eo * np.maximum(1.0 + 0.75 * a[5] - 0.35 * a[7] - 0.22 * a[6] - 0.15 * a[4], 0.2)
    lo = ew * eo * 0.72 * (1.0 - 0.45 * a[7] - 0.4 * a[6])
    top_c = -up * (1.0 - a[45]) + 0.9 * lo * a[45]  # the upper lid comes down in a blink
    lid_w = 0.011 + 0.004 * a[45]
    lower_w = 0.006 + 0.005 * a[7]
    lower_alpha = 0.45 + 0.45 * a[7]
    r_iris = ew * 0.5
    dark, lower_col = _rgb((0.1, 0.07, 0.06)), _rgb(ident.skin, 0.7)
    sclera, iris = _rgb((0.95, 0.93, 0.9)), _rgb(ident.iris)
    crow = float(a[6].max()) > 0.0
    for s in (-1.0, 1.0):
        ex, ey = s * ident.eye_dx, ident.eye_y
        p = ch.patch(ex - ew * 1.4, ex + ew * 1.4, ey - float(up.max()) - 0.03, ey + 0.07, (ex, ey))
        if not p:
            continue
        du, dv = p.u - ex, p.v - ey
        gq = 1.0 - np.square(du * (1.0 / ew))  # (T, 1, w)
        top, bot = top_c * gq, lo * gq
        edge = np.abs(du) - ew
        d_top = top - dv  # (T, h, w)
        d_bot = dv - bot
        opening = _cov(np.maximum(np.maximum(d_top, d_bot), edge), k)
        p.blend(opening, sclera)
        ri = np.sqrt(np.square(du) + np.square(dv))
        p.blend(_cov(ri - r_iris, k) * opening, iris)
        p.blend(_cov(ri - r_iris * 0.45, k) * opening, dark)
        np.abs(d_top, out=d_top)
        d_top -= lid_w
        p.blend(_cov(np.maximum(d_top, edge - 0.01), k), dark)  # upper lid line
        np.abs(d_bot, out=d_bot)
        d_bot -= lower_w
        p.blend(_cov(np.maximum(d_bot, edge), k) * lower_alpha, lower_col)
        if crow:  # crow's feet at the outer corner
            ring = np.abs(np.sqrt(np.square(du - s * ew * 0.6) + np.square(dv)) - ew * 0.75)
            ring -= 0.006
            np.maximum(ring, ew * 1.02 - s * du, out=ring)
            p.blend(_cov(ring, k) * (0.7 * a[6]), _rgb(ident.skin, 0.55))
        p.commit()


def _brows(ch: _Chunk) -> None:
    """AU1 raises the inner ends, AU2 the outer ends, AU4 lowers and knits them."""
    a, ident = ch.a, ch.ident
    ew, bt = ident.eye_w, ident.brow_thick
    brow0 = ident.eye_y - ident.brow_gap
    x_in = ident.eye_dx - ew * 0.8 - 0.05 * a[4]
    x_out = ident.eye_dx + ew * 1.2
    h_in = brow0 - 0.10 * a[1] - 0.02 * a[2] + 0.06 * a[4] + 0.025 * a[9]
    h_out = brow0 - 0.09 * a[2] - 0.02 * a[1] + 0.035 * a[4] + 0.012 * a[9]
    arch = ident.brow_arch * (1.0 - 0.6 * a[4]) + 0.02 * a[2]
    span = x_out - x_in
    lo_u, hi_u = float(x_in.min()) - bt, x_out + bt
    top_v = float(np.minimum(h_in, h_out).min() - arch.max()) - bt
    bot_v = float(np.maximum(h_in, h_out).max()) + bt
    for s in (-1.0, 1.0):
        p = ch.patch(min(s * lo_u, s * hi_u), max(s * lo_u, s * hi_u), top_v, bot_v,
                     (s * ident.eye_dx, brow0))  # fmt: skip
        if not p:
            continue
        st = (s * p.u - x_in) / span  # 0 at the inner end, 1 at the outer end; (T, 1, w)
        centre = h_in + (h_out - h_in) * st - 4.0 * arch * st * (1.0 - st)
        half = bt * (0.6 - 0.25 * np.clip(st, 0, 1))
        d = np.abs(p.v - centre)
        d -= half
        np.maximum(d, (np.abs(st - 0.5) - 0.5) * span, out=d)
        p.blend(_cov(d, ch.k), _rgb(ident.brow_color))
        p.commit()


def _nose(ch: _Chunk) -> None:
    """Bridge shadow, tip, nostrils (raised and flared by AU9, AU10), AU9 wrinkles."""
    a, ident, k = ch.a, ch.ident, ch.k
    ny, nw, ey = ident.nose_y, ident.nose_w, ident.eye_y
    p = ch.patch(-nw - 0.06, nw + 0.06, ey + 0.02, ny + 0.06, (0.0, ny))
    if not p:
        return
    shade = _rgb(ident.skin, 0.55)
    d = np.maximum(np.abs(p.u + 0.035) - 0.006, np.abs(p.v - (ey + ny) / 2) - (ny - ey) * 0.35)
    p.blend(_soft(d, 0.04) * 0.35, shade)
    p.blend(
        _soft(_ellipse_sdf(p.u, p.v - ny, nw * 0.85, 0.045), 0.055) * 0.3, _rgb(ident.skin, 0.8)
    )
    nrx = 0.026 * (1.0 + 0.35 * a[9])
    nv = ny + 0.028 - 0.03 * a[9] - 0.012 * a[10]
    for s in (-1.0, 1.0):
        nu = s * nw * 0.55 * (1.0 + 0.2 * a[9])
        p.blend(_cov(_ellipse_sdf(p.u - nu, p.v - nv, nrx, 0.014), k), _rgb(ident.skin, 0.35))
    if float(a[9].max()) > 0.0:
        side = np.abs(p.u) - 0.05
        bend = 0.6 * np.square(p.u)
        for i in range(3):
            d = np.abs(p.v - (ey + 0.05 + 0.03 * i) - bend)
            d -= 0.006
            np.maximum(d, side, out=d)
            p.blend(_cov(d, k) * (0.85 * a[9]), shade)
    p.commit()


def _mouth(ch: _Chunk, m: _Mouth) -> None:
    """Lips with per-side corners; opening with teeth; chin crease (AU17); dimple (AU14)."""
    a, ident, k = ch.a, ch.ident, ch.k
    my = ident.mouth_y
    tu = ident.lip_up * np.maximum(1.0 - 0.6 * a[23] - 0.3 * a[20] + 0.15 * a[10], 0.25)
    tl = ident.lip_lo * np.maximum(1.0 - 0.6 * a[23] - 0.3 * a[20] + 0.3 * a[17], 0.25)
    raise_up = 0.35 * m.gap + 0.03 * a[10]
    wmax = float(np.maximum(m.wl, m.wr).max())
    top_v = my - float((raise_up + tu).max()) - 0.08
    bot_v = my + float((m.jaw_drop + tl).max()) + 0.12
    p = ch.patch(-wmax - 0.07, wmax + 0.07, top_v, bot_v, (0.0, my))
    if not p:
        return
    u, v = p.u, p.v
    left = u < 0
    w_u = np.where(left, m.wl, m.wr)  # (T, 1, w)
    rel = np.square(u / w_u)
    gq = 1.0 - rel
    gs = np.sqrt(np.clip(gq, 0.0, 1.0))
    mid = my + np.where(left, m.corner_l, m.corner_r) * rel - 0.025 * a[17] * gq
    edge = np.abs(u) - w_u
    open_top = mid - raise_up * gq
    open_bot = mid + m.jaw_drop * gq
    bow = 0.008 * np.clip(1.0 - np.abs(u) * 20.0, 0, 1)  # cupid's bow
    outer_top = open_top - tu * gs - bow
    outer_bot = open_bot + tl * gs
    lips = np.maximum(np.maximum(outer_top - v, v - outer_bot), edge)
    p.blend(_cov(lips, k), _rgb(ident.lip_color))
    line = np.abs(v - mid)
    line -= 0.007
    np.maximum(line, edge, out=line)
    p.blend(_cov(line, k) * 0.8, _rgb(ident.lip_color, 0.45))  # the line between the lips
    if float(m.gap.max()) > 0.0:
        inside = _cov(np.maximum(np.maximum(open_top - v, v - open_bot), edge), k)
        inside *= np.minimum(m.gap * 100.0, 1.0)  # fades out as the lips close: no seam
        p.blend(inside, _rgb((0.3, 0.07, 0.08)))
        p.blend(_cov(v - (open_top + 0.032 * gq), k) * inside, _rgb((0.93, 0.92, 0.86)))
    crease_v = my + m.jaw_drop + ident.lip_lo + 0.07 - 0.03 * a[17] - 0.9 * np.square(u)
    d = np.abs(v - crease_v)
    d -= 0.007
    np.maximum(d, np.abs(u) - 0.08, out=d)
    shade = _rgb(ident.skin, 0.55)
    p.blend(_cov(d, k) * (0.2 + 0.5 * a[17]), shade)
    if float(a[14].max()) > 0.0:  # dimple beside the image-right corner
        dv = v - (my + m.corner_r)
        d = np.abs(u - (m.wr + 0.03) + 2.0 * np.square(dv))
        d -= 0.007
        np.maximum(d, np.abs(dv) - 0.04, out=d)
        p.blend(_cov(d, k) * (0.9 * a[14]), shade)
    p.commit()


def _draw(img: np.ndarray, ident: Identity, aus: np.ndarray, poses: np.ndarray, size: int) -> None:
    """Draw the face parts into ``img`` (3, T, H, W), which holds the static layer."""
    ch = _Chunk(img, ident, aus, poses, size)
    mouth = _mouth_geometry(ch)
    _head_and_hair(ch, mouth)
    _forehead(ch)
    _furrows(ch)
    _cheeks(ch)
    _folds(ch, mouth)
    _eyes(ch)
    _brows(ch)
    _nose(ch)
    _mouth(ch, mouth)


def _prepare(
    aus: np.ndarray,
    poses: np.ndarray | None,
    illums: np.ndarray | None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Validate and normalise the per-frame inputs (float32; defaults: still, neutral light)."""
    aus = np.clip(np.asarray(aus, dtype=np.float32), 0.0, 1.0)
    if aus.ndim != 2 or aus.shape[1] != N_AUS:
        raise ValueError(f"aus must have shape (T, {N_AUS}), got {aus.shape}")
    n = aus.shape[0]
    poses = np.zeros((n, 3), np.float32) if poses is None else np.asarray(poses, np.float32)
    if poses.shape != (n, 3):
        raise ValueError(f"poses must have shape ({n}, 3), got {poses.shape}")
    illums = np.ones(n, np.float32) if illums is None else np.asarray(illums, np.float32)
    if illums.shape != (n,):
        raise ValueError(f"illums must have shape ({n},), got {illums.shape}")
    return aus, poses, illums


_NOISE_FRAMES = 8  # the bank holds this many frames' worth of noise


@functools.lru_cache(maxsize=4)
def _noise_bank(size: int) -> np.ndarray:
    """A fixed standard-normal sequence, ``(_NOISE_FRAMES + 1) * size * size`` float32.

    Drawing fresh Gaussian noise costs about as much as rendering the face, so each frame
    takes a contiguous run of this sequence at a random offset, with a random sign (the
    rows of a frame then start at arbitrary points of the sequence: still white noise).
    Seeded by ``size`` only, hence the same everywhere.
    """
    rng = np.random.default_rng(1_000_003 + size)
    return rng.standard_normal((_NOISE_FRAMES + 1) * size * size, dtype=np.float32)


def _sensor_noise(rng: np.random.Generator, t: int, size: int, sigma: float) -> np.ndarray:
    """Gaussian noise of ``sigma`` for ``t`` frames, (t, size, size) float32."""
    bank, n = _noise_bank(size), size * size
    offsets = rng.integers(0, _NOISE_FRAMES * n + 1, size=t)
    signs = rng.integers(0, 2, size=t)
    out = np.empty((t, n), dtype=np.float32)
    for i in range(t):
        np.multiply(bank[offsets[i] : offsets[i] + n], -sigma if signs[i] else sigma, out=out[i])
    return out.reshape(t, size, size)


#: Frames rendered together: enough to amortise Python overhead, few enough for the cache.
CHUNK = 16


def _chunks(
    identity: Identity, aus: np.ndarray, poses: np.ndarray, size: int
) -> Iterator[tuple[int, int, np.ndarray]]:
    """Yield ``(start, stop, unlit frames (3, t, H, W) float32 0..255)`` chunk by chunk."""
    n = aus.shape[0]
    tiled = np.empty((3, min(n, CHUNK), size, size), dtype=np.float32)
    tiled[:] = _static_layer(identity, size)[:, None]  # once per clip; then plain copies
    for s0 in range(0, n, CHUNK):
        s1 = min(n, s0 + CHUNK)
        img = tiled[:, : s1 - s0].copy()
        _draw(img, identity, aus[s0:s1], poses[s0:s1], size)
        yield s0, s1, img


def render_frames(
    identity: Identity,
    aus: np.ndarray,
    size: int,
    poses: np.ndarray | None = None,
    illums: np.ndarray | None = None,
    rng: np.random.Generator | None = None,
    noise: float = 2.0,
) -> np.ndarray:
    """Render a clip: AUs (T, 17) in [0, 1] → RGB frames (T, size, size, 3) ``uint8``.

    ``poses`` (T, 3) holds per-frame ``(dx, dy, roll)``: shifts as fractions of the image
    side, roll in degrees (positive turns the face clockwise in the image). ``illums`` (T,)
    scales brightness (1 = neutral). When ``rng`` is given, Gaussian sensor noise of
    ``noise`` grey levels (the same in all channels) is added.
    """
    aus, poses, illums = _prepare(aus, poses, illums)
    out = np.empty((aus.shape[0], size, size, 3), dtype=np.uint8)
    for s0, s1, img in _chunks(identity, aus, poses, size):
        img *= illums[s0:s1].reshape(1, -1, 1, 1)
        if rng is not None and noise > 0:
            img += _sensor_noise(rng, s1 - s0, size, noise)
        img += 0.5  # round, then clip: the uint8 cast truncates
        np.clip(img, 0.0, 255.0, out=img)
        out[s0:s1] = np.moveaxis(img, 0, -1)
    return out


# BT.601 limited-range RGB → YCbCr, what decoders assume for untagged SD video.
_Y = (0.256788, 0.504129, 0.097906)
_CB = (-0.148223, -0.290993, 0.439216)
_CR = (0.439216, -0.367788, -0.071427)


def render_yuv420p(
    identity: Identity,
    aus: np.ndarray,
    size: int,
    poses: np.ndarray | None = None,
    illums: np.ndarray | None = None,
    rng: np.random.Generator | None = None,
    noise: float = 2.0,
) -> np.ndarray:
    """Like :func:`render_frames`, packed for an H.264 encoder: (T, 3*size//2, size) ``uint8``.

    Each frame holds the Y plane followed by the 2×2-subsampled Cb and Cr planes (BT.601
    limited range), the layout of PyAV's ``yuv420p`` arrays. Light and noise are applied in
    YCbCr: grey noise added to R, G and B alike only moves Y. ``size`` must be even.
    """
    if size % 2:
        raise ValueError(f"yuv420p needs an even frame size, got {size}")
    aus, poses, illums = _prepare(aus, poses, illums)
    h2 = size // 2
    out = np.empty((aus.shape[0], size * 3 // 2, size), dtype=np.uint8)
    f32 = np.float32
    for s0, s1, (r, g, b) in _chunks(identity, aus, poses, size):
        t = s1 - s0
        light = illums[s0:s1].reshape(t, 1, 1)
        y = r * f32(_Y[0]) + g * f32(_Y[1]) + b * f32(_Y[2])
        y *= light
        if rng is not None and noise > 0:
            y += _sensor_noise(rng, t, size, noise * sum(_Y))
        y += 16.5
        np.clip(y, 0.0, 255.0, out=y)
        out[s0:s1, :size] = y
        quarter = []  # 2×2 means: pairwise sums of rows, then of columns
        for ch in (r, g, b):
            rows = ch[:, 0::2] + ch[:, 1::2]
            quarter.append(rows[:, :, 0::2] + rows[:, :, 1::2])
        light = light * f32(0.25)
        chroma = out[s0:s1, size:].reshape(t, 2, h2 * h2)
        for i, m in enumerate((_CB, _CR)):
            c = quarter[0] * f32(m[0]) + quarter[1] * f32(m[1]) + quarter[2] * f32(m[2])
            c *= light
            c += 128.5
            np.clip(c, 0.0, 255.0, out=c)
            chroma[:, i] = c.reshape(t, -1)
    return out


def render_face(
    identity: Identity,
    aus: np.ndarray,
    size: int,
    pose: tuple[float, float, float] = (0.0, 0.0, 0.0),
    illum: float = 1.0,
    rng: np.random.Generator | None = None,
    noise: float = 2.0,
) -> np.ndarray:
    """Render one face: an AU vector (17,) in [0, 1] → RGB ``uint8`` (size, size, 3).

    ``pose`` is ``(dx, dy, roll)``: shifts as fractions of the image side, roll in degrees.
    ``illum`` scales brightness. Sensor noise is added only when ``rng`` is given.
    """
    aus = np.asarray(aus, dtype=np.float32).reshape(1, -1)
    return render_frames(
        identity,
        aus,
        size,
        poses=np.asarray([pose], np.float32),
        illums=np.asarray([illum], np.float32),
        rng=rng,
        noise=noise,
    )[0]
