"""Writing synth clips as H.264: reproducible bytes on every CPU (one thread, fixed options).

Videos are H.264 (``libx264``, ``yuv420p``), one encoder thread, fixed options and fixed
instruction sets (:func:`x264_cpu_params`), which makes them byte-identical for a given
library build whatever the CPU.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from emobench.data.synth.audio import add_audio_stream, mux_audio
from emobench.data.synth.config import X264_SPEED_PARAMS
from emobench.io import atomic_path


def x264_cpu_params() -> str:
    """x264's instruction sets, fixed so that the bytes do not depend on the CPU.

    x264's default picks every instruction set the CPU has, and its output then differs
    between CPUs; worse, on some (an AMD EPYC with AVX-512, its ``SSE2Fast`` and
    ``Cache64`` paths) two encodes of the same frames in one process differed in about 1
    clip of 50. Measured here: with only the x86-64 baseline sets (MMX2, SSE, SSE2) the
    bytes equal those of x264's plain C code (``asm=0``) on every clip tried, at the same
    speed as the default for these small clips; other architectures use the C code.
    """
    import platform

    if platform.machine().lower() in ("x86_64", "amd64", "x64"):
        return "asm=MMX2,SSE,SSE2"
    return "asm=0"


def encode_h264(
    path: Path,
    yuv: np.ndarray,
    fps: int,
    crf: int = 20,
    preset: str = "veryfast",
    x264_params: str = X264_SPEED_PARAMS,
    audio: np.ndarray | None = None,
) -> None:
    """Write (T, 3H/2, W) ``yuv420p`` frames as an H.264 mp4, atomically (temp + rename).

    ``audio`` (float samples, see :mod:`emobench.data.synth.audio`) adds a FLAC track to
    the same file; without it the file has no audio stream and the same bytes as before.

    One encoder thread, fixed options and fixed instruction sets (:func:`x264_cpu_params`)
    make the stream reproducible, and the same on every CPU. Frames are filled
    through the planes' buffers (three times faster than ``VideoFrame.from_ndarray``).
    """
    import av

    height, width = yuv.shape[1] * 2 // 3, yuv.shape[2]
    h2, w2 = height // 2, width // 2
    with atomic_path(path) as tmp, av.open(str(tmp), mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height = width, height
        stream.pix_fmt = "yuv420p"
        options = {"preset": preset, "crf": str(crf), "threads": "1"}
        options["x264-params"] = ":".join(p for p in (x264_params, x264_cpu_params()) if p)
        stream.options = options
        track = None
        if audio is not None:
            track = add_audio_stream(container)
        for i, packed in enumerate(yuv):
            frame = av.VideoFrame(width, height, "yuv420p")
            chroma = packed[height:].reshape(2, h2, w2)
            planes = (packed[:height], chroma[0], chroma[1])
            for plane, data in zip(frame.planes, planes, strict=True):
                rows = np.frombuffer(plane, dtype=np.uint8).reshape(plane.height, plane.line_size)
                rows[:, : plane.width] = data
            frame.pts = i
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
        if track is not None:
            mux_audio(container, track, audio)


def _encoder_info() -> dict[str, Any]:
    import av

    return {
        "codec": "libx264",
        "pix_fmt": "yuv420p",
        "x264_cpu": x264_cpu_params(),
        "pyav": av.__version__,
        "libavcodec": ".".join(map(str, av.library_versions.get("libavcodec", ()))),
    }
