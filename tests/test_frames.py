"""Frame sources: decode known content (flat frames whose grey level encodes the index)
with every video backend installed here, plus the ``auto`` backend's checks and fallbacks."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from emobench.errors import EmobenchError
from emobench.video import frames as frames_mod
from emobench.video.decord_source import DecordVideoSource
from emobench.video.frames import (
    BACKENDS,
    CHECK_CLIPS,
    FRAME_SOURCES,
    FolderFrameSource,
    FrameReadError,
    FrameSource,
    FrameSourceError,
    VideoFrameSource,
    available_backends,
    decode_stats,
    frame_number,
    open_source,
    read_clip,
    reset_decode_stats,
)

N_FRAMES = 28
SIDE = 64
CONCRETE = available_backends()  # "pyav" everywhere, "decord" where installed
HAS_DECORD = "decord" in CONCRETE
needs_decord = pytest.mark.skipif(not HAS_DECORD, reason="decord is not installed")


def level(i: int) -> int:
    """Grey level of video frame i: 16, 24, ..., 232 (8 apart, so +-3 identifies i)."""
    return 8 * i + 16


def write_video(
    path: Path,
    n: int = N_FRAMES,
    side: int = SIDE,
    fps: int = 25,
    codec_options: dict[str, str] | None = None,
    container_options: dict[str, str] | None = None,
) -> Path:
    """Lossless-ish H.264 (qp=0, unless ``codec_options`` say otherwise; qp=0 writes no
    B-frames) whose frame i is a flat grey image of level(i)."""
    import av

    with av.open(str(path), "w", options=container_options or {}) as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = side, side, "yuv420p"
        stream.options = codec_options or {"qp": "0", "preset": "ultrafast"}
        for i in range(n):
            img = np.full((side, side, 3), level(i), dtype=np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


@pytest.fixture(scope="module")
def video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_video(tmp_path_factory.mktemp("video") / "clip.mp4")


@pytest.fixture(autouse=True)
def _fresh_stats():
    """Each test starts with no decode statistics and no checked (source, size) pairs."""
    reset_decode_stats(forget_checks=True)
    yield
    reset_decode_stats(forget_checks=True)


def decoded_levels(frames: np.ndarray) -> list[int]:
    """Map each decoded frame's mean back to the frame index it encodes."""
    means = frames.reshape(len(frames), -1).mean(axis=1)
    idx = np.rint((means - 16) / 8).astype(int)
    assert np.all(np.abs(means - (8 * idx + 16)) <= 3), means
    return idx.tolist()


def read_or_skip(src: VideoFrameSource, path: Path, req: list[int], **kw) -> np.ndarray:
    """``src.read``; decord alone may fail on some CPUs for some sizes: skip then."""
    try:
        return src.read(str(path), req, **kw)
    except FrameReadError as exc:
        if src.backend == "decord" and exc.reason.startswith("decord: decoding failed"):
            pytest.skip(f"decord cannot decode this size on this CPU: {exc.reason}")
        raise


# --- video ------------------------------------------------------------------------------


def test_backends_listed() -> None:
    assert BACKENDS == ("auto", "pyav", "decord")
    assert CONCRETE[0] == "pyav" and set(CONCRETE) <= {"pyav", "decord"}
    with pytest.raises(FrameSourceError, match="unknown video backend 'ffmpeg'"):
        VideoFrameSource(backend="ffmpeg")


@pytest.mark.parametrize("backend", [*CONCRETE, "auto"])
def test_video_reads_requested_order(video: Path, backend: str) -> None:
    src = VideoFrameSource(backend=backend)
    assert src.count(str(video)) == N_FRAMES
    assert src.fps(str(video)) == pytest.approx(25.0)
    assert src.probe(str(video)) == (N_FRAMES, pytest.approx(25.0))
    for req in ([0, 5, 27], [5, 1, 1, 27, 0, 5], [27, 26, 3], list(range(N_FRAMES))):
        frames = read_or_skip(src, video, req)
        assert frames.dtype == np.uint8
        assert frames.shape == (len(req), SIDE, SIDE, 3)
        assert decoded_levels(frames) == req


@pytest.fixture(scope="module")
def sources(tmp_path_factory: pytest.TempPathFactory) -> dict[int, Path]:
    """Flat-grey videos 16..112 px wide (decord2 3.4 fails on some of these on some CPUs)."""
    folder = tmp_path_factory.mktemp("sizes")
    return {side: write_video(folder / f"{side}.mp4", side=side) for side in SOURCE_SIDES}


SOURCE_SIDES = (16, 24, 32, 48, 64, 96, 112)
OUTPUT_SIZES = (None, 32, 48, 64, 112)


@pytest.mark.parametrize("backend", [*CONCRETE, "auto"])
def test_known_content_every_size(sources: dict[int, Path], backend: str) -> None:
    """Every source size at native size and scaled to 32..112 px: pyav and auto decode the
    right frames; decord either does too or raises a FrameReadError naming decord."""
    req = [3, 27, 0, 3]
    decord_failures = []
    for side, path in sources.items():
        for size in OUTPUT_SIZES:
            src = VideoFrameSource(size=size, backend=backend)
            try:
                frames = src.read(str(path), req, clip_id=f"s{side}")
            except FrameReadError as exc:
                assert backend == "decord", (side, size, exc.reason)
                assert exc.reason.startswith("decord: ") and exc.clip_id == f"s{side}"
                decord_failures.append((side, size))
                continue
            out = size or side
            assert frames.shape == (4, out, out, 3), (side, size)
            assert decoded_levels(frames) == req, (side, size)
    if backend == "auto" and HAS_DECORD:  # every pair checked once; PyAV's frames returned
        checks = decode_stats().checks
        assert len(checks) == len(SOURCE_SIDES) * len(OUTPUT_SIZES)
        for c in checks:
            width, height = c["source"].split("x")
            assert width == height and int(width) in SOURCE_SIDES and c["clips"] == 1
            assert c["result"] == "checking" or c["result"].startswith("decord error: decord: ")
        assert decode_stats().clips == {"pyav": len(checks)}


@pytest.mark.parametrize("backend", [*CONCRETE, "auto"])
def test_presentation_order_with_b_frames(tmp_path: Path, backend: str) -> None:
    """Frame i is the i-th frame shown, also when the stream reorders (B-frames)."""
    path = write_video(tmp_path / "b.mp4", codec_options={"crf": "10", "preset": "medium"})
    import av

    with av.open(str(path)) as c:
        packets = [p for p in c.demux(video=0) if p.size]
        assert any(p.pts != p.dts for p in packets)  # decode order != presentation order
    frames = read_or_skip(VideoFrameSource(backend=backend), path, [26, 1, 14, 2])
    assert decoded_levels(frames) == [26, 1, 14, 2]


@needs_decord
def test_decord_backend_matches_decord_directly(video: Path) -> None:
    from emobench.video.decord_source import _decord

    reader_cls, _ = _decord()
    req = [9, 2, 2, 20]
    direct = reader_cls(str(video)).get_batch(req).asnumpy()
    ours = read_or_skip(VideoFrameSource(backend="decord"), video, req)
    assert np.array_equal(ours, direct)


def test_pyav_backend_matches_pyav_directly(video: Path) -> None:
    import av

    with av.open(str(video)) as c:
        direct = np.stack([f.to_ndarray(format="rgb24") for f in c.decode(video=0)])
    req = [9, 2, 2, 20]
    assert np.array_equal(VideoFrameSource(backend="pyav").read(str(video), req), direct[req])


@pytest.mark.parametrize("backend", [*CONCRETE, "auto"])
def test_video_resize_and_empty_request(video: Path, backend: str) -> None:
    for size in (32, 20, 16, 48, 112):
        src = VideoFrameSource(size=size, backend=backend)
        try:
            frames = src.read(str(video), [3, 10, 3])
        except FrameReadError as exc:  # decord2 on some CPUs and sizes
            assert backend == "decord" and exc.reason.startswith("decord: ")
            continue
        assert frames.shape == (3, size, size, 3)
        assert decoded_levels(frames) == [3, 10, 3]
    assert VideoFrameSource(size=16, backend=backend).read(str(video), []).shape == (0, 16, 16, 3)
    empty = read_or_skip(VideoFrameSource(backend=backend), video, [])
    assert empty.shape == (0, SIDE, SIDE, 3)
    with pytest.raises(FrameSourceError, match="size"):
        VideoFrameSource(size=0, backend=backend)


@pytest.mark.parametrize("backend", [*CONCRETE, "auto"])
def test_video_errors_name_the_clip(video: Path, tmp_path: Path, backend: str) -> None:
    src = VideoFrameSource(backend=backend)
    decoder = "decord" if backend == "decord" else "pyav"  # auto: PyAV opens first
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, np.uint8).tobytes())
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(video.read_bytes()[: video.stat().st_size // 2])  # index at the end: lost
    cases = [
        (tmp_path / "missing.mp4", [0], "missing file"),
        (empty, [0], "empty file"),
        (garbage, [0], f"{decoder}: corrupt or undecodable"),
        (cut, [0], f"{decoder}: corrupt or undecodable"),
        (tmp_path, [0], "found a folder"),
        (video, [0, N_FRAMES], f"{decoder}: frame index {N_FRAMES} out of range"),
        (video, [-1, 2], f"{decoder}: frame index -1 out of range"),
    ]
    for path, req, reason in cases:
        with pytest.raises(FrameReadError) as info:
            src.read(str(path), req, clip_id="clip-042")
        err = info.value
        assert isinstance(err, EmobenchError)
        assert err.clip_id == "clip-042" and err.path == str(path)
        assert reason in err.reason, (reason, err.reason)
        assert "'clip-042'" in str(err) and reason in str(err)
    with pytest.raises(FrameReadError, match="missing file"):
        src.count(str(tmp_path / "missing.mp4"), clip_id="x")
    with pytest.raises(FrameReadError, match="integers"):
        src.read(str(video), [1.5, 2.0])


@pytest.mark.parametrize("backend", [*CONCRETE, "auto"])
def test_truncated_stream_is_an_error(tmp_path: Path, backend: str) -> None:
    """Index at the start (faststart), half the frame data gone: the first frames decode,
    a frame past the cut is a FrameReadError, never a short or garbage array."""
    path = write_video(tmp_path / "fs.mp4", container_options={"movflags": "faststart"})
    data = path.read_bytes()
    path.write_bytes(data[: len(data) * 6 // 10])
    src = VideoFrameSource(backend=backend)
    assert decoded_levels(read_or_skip(src, path, [0, 1])) == [0, 1]
    with pytest.raises(FrameReadError) as info:
        src.read(str(path), [N_FRAMES - 1], clip_id="cut")
    assert info.value.reason.split(":")[0] in ("pyav", "decord")


@pytest.mark.parametrize("backend", [*CONCRETE, "auto"])
def test_frame_count_must_match_the_annotation(video: Path, backend: str) -> None:
    src = VideoFrameSource(backend=backend)
    assert decoded_levels(read_or_skip(src, video, [2], n_frames=N_FRAMES)) == [2]
    for req in ([2], []):
        with pytest.raises(FrameReadError, match="annotation says 30 frames, the video has 28"):
            src.read(str(video), req, clip_id="c", n_frames=30)
    row = {"clip_id": "v1", "path": str(video), "media": "video", "n_frames": 48}
    with pytest.raises(FrameReadError, match="'v1'.*annotation says 48 frames, the video has 28"):
        read_clip(row, [0], backend=backend)
    row["n_frames"] = N_FRAMES
    assert decoded_levels(read_or_skip_clip(row, [4, 2], backend)) == [4, 2]


def read_or_skip_clip(row: dict, req: list[int], backend: str) -> np.ndarray:
    try:
        return read_clip(row, req, backend=backend)
    except FrameReadError as exc:
        if backend == "decord" and exc.reason.startswith("decord: decoding failed"):
            pytest.skip(f"decord cannot decode this size on this CPU: {exc.reason}")
        raise


@pytest.mark.parametrize("backend", ["pyav", "auto"])
def test_container_without_frame_count(tmp_path: Path, backend: str) -> None:
    """Matroska stores no frame count: PyAV counts by decoding."""
    path = write_video(tmp_path / "clip.mkv")
    src = VideoFrameSource(backend=backend)
    assert src.count(str(path)) == N_FRAMES
    assert decoded_levels(src.read(str(path), [27, 3, 0])) == [27, 3, 0]
    with pytest.raises(FrameReadError, match=f"index {N_FRAMES} out of range"):
        src.read(str(path), [1, N_FRAMES])
    with pytest.raises(FrameReadError, match="annotation says 20 frames, the video has 28"):
        src.read(str(path), [1], n_frames=20)
    with pytest.raises(FrameReadError, match="annotation says 20 frames, the video has 28"):
        src.read(str(path), [], n_frames=20)


# --- auto: checks, fallbacks, statistics --------------------------------------------------


def _decord_works(video: Path, size: int | None) -> bool:
    try:
        DecordVideoSource(size).read(str(video), [0])
    except FrameReadError:
        return False
    return True


@needs_decord
def test_auto_trusts_decord_after_checks(video: Path) -> None:
    if not _decord_works(video, None):
        pytest.skip("decord cannot decode 64 px videos on this CPU")
    src = VideoFrameSource(backend="auto")
    for k in range(CHECK_CLIPS + 2):
        assert decoded_levels(src.read(str(video), [k, 20, 1])) == [k, 20, 1]
    stats = decode_stats()
    assert stats.clips == {"pyav": CHECK_CLIPS, "decord": 2}
    assert stats.fallbacks == 0 and stats.fallback_reasons == []
    (check,) = stats.checks
    assert check["source"] == "64x64" and check["size"] is None
    assert check["result"] == "decord bit-identical" and check["clips"] == CHECK_CLIPS
    assert check["max_diff"] == 0
    json.dumps(stats.as_dict())  # JSON-ready


@needs_decord
def test_auto_ignores_timing(video: Path, monkeypatch) -> None:
    """A slower decord is still used where it is bit-identical: no timing in the rule, so
    two runs decide alike whatever the machine's load."""
    if not _decord_works(video, None):
        pytest.skip("decord cannot decode 64 px videos on this CPU")
    import time

    real = DecordVideoSource.read

    def slow(self, path, indices, **kw):  # type: ignore[no-untyped-def]
        time.sleep(0.05)
        return real(self, path, indices, **kw)

    monkeypatch.setattr(DecordVideoSource, "read", slow)
    src = VideoFrameSource(backend="auto")
    for k in range(CHECK_CLIPS + 2):
        assert decoded_levels(src.read(str(video), [k, 3])) == [k, 3]
    assert decode_stats().clips == {"pyav": CHECK_CLIPS, "decord": 2}


def _shifted(monkeypatch: pytest.MonkeyPatch, by: int, where: tuple[int, ...] = ()) -> None:
    """Make the decord reader return its frames brightened by ``by`` grey levels (only at
    pixel ``where`` of the first frame, when given)."""
    real = DecordVideoSource.read

    def read(self, path, indices, **kw):  # type: ignore[no-untyped-def]
        frames = real(self, path, indices, **kw).astype(int)
        if where:
            frames[where] += by
        else:
            frames += by
        return np.clip(frames, 0, 255).astype(np.uint8)

    monkeypatch.setattr(DecordVideoSource, "read", read)


@needs_decord
def test_auto_uses_pyav_when_decord_mismatches(video: Path, monkeypatch) -> None:
    if not _decord_works(video, None):
        pytest.skip("decord cannot decode 64 px videos on this CPU")
    _shifted(monkeypatch, 14)
    src = VideoFrameSource(backend="auto")
    for k in range(CHECK_CLIPS + 2):
        assert decoded_levels(src.read(str(video), [k, 9])) == [k, 9]  # PyAV's, unshifted
    stats = decode_stats()
    assert stats.clips == {"pyav": CHECK_CLIPS + 2} and stats.fallbacks == 0
    (check,) = stats.checks
    assert check["result"].startswith("mismatch: 100.0% of values differ (mean 14.00")
    assert check["clips"] == 1


@needs_decord
def test_auto_one_grey_level_in_one_pixel_is_a_mismatch(video: Path, monkeypatch) -> None:
    """Bit-identical means bit-identical: one value off by one keeps the pair on PyAV."""
    if not _decord_works(video, None):
        pytest.skip("decord cannot decode 64 px videos on this CPU")
    _shifted(monkeypatch, 1, (0, 5, 7, 1))
    src = VideoFrameSource(backend="auto")
    for _ in range(CHECK_CLIPS + 2):
        frames = src.read(str(video), [0, 5])
    ref = VideoFrameSource(backend="pyav").read(str(video), [0, 5])
    assert np.array_equal(frames, ref)
    (check,) = decode_stats().checks
    assert check["result"].startswith("mismatch") and check["max_diff"] == 1
    assert decode_stats().clips == {"pyav": CHECK_CLIPS + 2 + 1}


@needs_decord
def test_auto_falls_back_when_decord_errors(video: Path, monkeypatch) -> None:
    if not _decord_works(video, None):
        pytest.skip("decord cannot decode 64 px videos on this CPU")
    src = VideoFrameSource(backend="auto")
    for _ in range(CHECK_CLIPS):
        src.read(str(video), [0])

    def broken(self, path, indices, *, clip_id=None, n_frames=None):  # type: ignore[no-untyped-def]
        raise FrameReadError(clip_id, path, "decord: decoding failed (DECORDError: boom)")

    monkeypatch.setattr(DecordVideoSource, "read", broken)
    for k in range(3):
        frames = src.read(str(video), [k, 7], clip_id=f"c{k}")
        assert decoded_levels(frames) == [k, 7]
    stats = decode_stats()
    assert stats.clips == {"pyav": CHECK_CLIPS + 3}
    assert stats.fallbacks == 3
    assert stats.fallback_reasons[0] == {
        "clip": "c0",
        "reason": "decord: decoding failed (DECORDError: boom)",
    }
    assert stats.checks[0]["result"] == "decord bit-identical"  # one clip's error keeps it
    # a clip PyAV cannot read either is its error, not a fallback
    with pytest.raises(FrameReadError, match="pyav: frame index 99 out of range"):
        src.read(str(video), [99])
    assert decode_stats().fallbacks == 3


@needs_decord
def test_auto_records_a_decord_error_while_checking(video: Path, monkeypatch) -> None:
    def broken(self, path, indices, *, clip_id=None, n_frames=None):  # type: ignore[no-untyped-def]
        raise FrameReadError(clip_id, path, "decord: decoding failed (DECORDArrayCopyFromTo)")

    monkeypatch.setattr(DecordVideoSource, "read", broken)
    src = VideoFrameSource(size=48, backend="auto")
    for k in range(CHECK_CLIPS + 1):
        assert decoded_levels(src.read(str(video), [k])) == [k]
    stats = decode_stats()
    assert stats.clips == {"pyav": CHECK_CLIPS + 1} and stats.fallbacks == 0
    assert stats.checks == [
        {
            "source": "64x64",
            "size": 48,
            "result": "decord error: decord: decoding failed (DECORDArrayCopyFromTo)",
            "clips": 1,
            "mean_diff": 0.0,
            "p99_diff": 0.0,
            "max_diff": 0.0,
        }
    ]


def test_fallback_reasons_are_capped(monkeypatch) -> None:
    for k in range(frames_mod.MAX_FALLBACK_REASONS + 5):
        frames_mod._note_fallback(f"c{k}", "decord: boom")
    stats = decode_stats()
    assert stats.fallbacks == frames_mod.MAX_FALLBACK_REASONS + 5
    assert len(stats.fallback_reasons) == frames_mod.MAX_FALLBACK_REASONS
    reset_decode_stats()
    assert decode_stats().fallbacks == 0 and decode_stats().fallback_reasons == []


@pytest.mark.parametrize("backend", CONCRETE)
def test_forced_backend_counts_its_clips(video: Path, backend: str) -> None:
    src = VideoFrameSource(backend=backend)
    read_or_skip(src, video, [1])
    read_or_skip(src, video, [2])
    stats = decode_stats()
    assert stats.clips == {backend: 2} and stats.checks == [] and stats.fallbacks == 0


def test_reset_keeps_checks_unless_asked(video: Path) -> None:
    VideoFrameSource(backend="auto").read(str(video), [0])
    before = decode_stats()
    reset_decode_stats()
    after = decode_stats()
    assert after.clips == {} and after.checks == before.checks
    reset_decode_stats(forget_checks=True)
    assert decode_stats().checks == []


# --- folders ----------------------------------------------------------------------------


def write_folder(folder: Path, names: list[str], values: list[int], mode: str = "RGB") -> Path:
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    for name, v in zip(names, values, strict=True):
        fill = v if mode == "L" else (v, v, v)
        Image.new(mode, (20, 16), fill).save(folder / name)
    return folder


def test_folder_numeric_order_png(tmp_path: Path) -> None:
    # written in shuffled order; lexicographic order would put 10, 11, 12 before 2
    nums = [7, 12, 1, 10, 3, 2, 11, 4, 9, 5, 8, 6]
    folder = write_folder(tmp_path / "c1", [f"{k}.png" for k in nums], [10 * k for k in nums])
    src = FolderFrameSource()
    assert src.count(str(folder)) == 12
    assert src.frame_numbers(str(folder)) == list(range(1, 13))
    frames = src.read(str(folder), [0, 9, 11, 1, 1])
    assert frames.shape == (5, 16, 20, 3)
    # frame index i is the file numbered i+1; PNG is lossless so values are exact
    assert frames[:, 0, 0, 0].tolist() == [10, 100, 120, 20, 20]


def test_folder_jpeg_greyscale_and_resize(tmp_path: Path) -> None:
    # SAMM-style greyscale JPEGs named <subject>_<frame>.jpg, frames numbered from 5
    names = [f"006_{k:04d}.jpg" for k in (5, 6, 7, 8)]
    folder = write_folder(tmp_path / "006_1_2", names, [40, 90, 140, 190], mode="L")
    src = FolderFrameSource()
    frames = src.read(str(folder), [3, 0])
    assert frames.shape == (2, 16, 20, 3)  # greyscale -> 3 channels
    assert np.allclose(frames.reshape(2, -1).mean(axis=1), [190, 40], atol=2)
    assert src.frame_numbers(str(folder)) == [5, 6, 7, 8]
    small = FolderFrameSource(size=8).read(str(folder), [1])
    assert small.shape == (1, 8, 8, 3)
    assert abs(float(small.mean()) - 90) <= 2


def test_frame_number_parsing() -> None:
    assert frame_number("12.jpg") == 12
    assert frame_number("img10.jpg") == 10
    assert frame_number("reg_img3.jpg") == 3
    assert frame_number("006_1_2_0123.jpg") == 123
    assert frame_number("cover.jpg") is None


def test_folder_casme_names(tmp_path: Path) -> None:
    nums = [46, 100, 47, 9, 250]
    folder = write_folder(tmp_path / "EP02_01f", [f"reg_img{k}.jpg" for k in nums], [50] * 5)
    assert FolderFrameSource().frame_numbers(str(folder)) == [9, 46, 47, 100, 250]


def test_folder_sees_new_files(tmp_path: Path) -> None:
    folder = write_folder(tmp_path / "grow", ["1.png", "2.png"], [1, 2])
    src = FolderFrameSource()
    assert src.count(str(folder)) == 2
    import os

    write_folder(folder, ["3.png"], [3])
    os.utime(folder, ns=(0, os.stat(folder).st_mtime_ns + 10**9))  # coarse-mtime filesystems
    assert src.count(str(folder)) == 3


def test_folder_errors(tmp_path: Path) -> None:
    src = FolderFrameSource()
    (tmp_path / "empty").mkdir()
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "readme.txt").write_text("no images here")
    bad = write_folder(tmp_path / "bad", ["1.png", "2.png"], [1, 2])
    (bad / "3.jpg").write_bytes(np.random.default_rng(1).integers(0, 256, 999, np.uint8).tobytes())
    nonum = write_folder(tmp_path / "nonum", ["1.png", "cover.png"], [1, 2])
    mixed = write_folder(tmp_path / "mixed", ["1.png"], [1])
    from PIL import Image

    Image.new("RGB", (8, 8)).save(mixed / "2.png")
    a_file = tmp_path / "file.png"
    a_file.write_bytes(b"x")
    cases = [
        (tmp_path / "missing", [0], "missing folder"),
        (tmp_path / "empty", [0], "no images"),
        (tmp_path / "notes", [0], "no images"),
        (bad, [2], "cannot decode image '3.jpg'"),
        (bad, [0, 5], "index 5 out of range"),
        (nonum, [0], "'cover.png' has no frame number"),
        (mixed, [0, 1], "differ in size"),
        (a_file, [0], "found a file"),
    ]
    for path, req, reason in cases:
        with pytest.raises(FrameReadError) as info:
            src.read(str(path), req, clip_id="s01/EP01")
        assert info.value.clip_id == "s01/EP01"
        assert reason in str(info.value)
        assert "'s01/EP01'" in str(info.value)
    # with a resize, frames of different sizes stack fine
    assert FolderFrameSource(size=4).read(str(mixed), [0, 1]).shape == (2, 4, 4, 3)


# --- registry and clip-index rows -------------------------------------------------------


def test_open_source_registry() -> None:
    assert isinstance(open_source("video"), VideoFrameSource)
    assert isinstance(open_source("frames", size=16), FolderFrameSource)
    assert open_source("frames", size=16).size == 16
    assert isinstance(open_source("video"), FrameSource)
    assert set(FRAME_SOURCES) == {"video", "frames"}
    with pytest.raises(FrameSourceError, match="audio"):
        open_source("audio")
    assert open_source("video").backend == "auto"
    for backend in CONCRETE:
        assert open_source("video", size=32, backend=backend).backend == backend
        assert open_source("frames", backend=backend).size is None  # folders ignore it
    with pytest.raises(FrameSourceError, match="unknown video backend"):
        open_source("video", backend="opencv")


@pytest.mark.parametrize("backend", [*CONCRETE, "auto"])
def test_read_clip(video: Path, tmp_path: Path, backend: str) -> None:
    row = {"clip_id": "v1", "path": str(video), "media": "video", "label": "happiness"}
    assert decoded_levels(read_or_skip_clip(row, [4, 2], backend)) == [4, 2]
    assert decoded_levels(read_clip(row, [4, 2])) == [4, 2]  # backend "auto" by default
    assert read_clip(row, [4], size=16, backend="pyav").shape == (1, 16, 16, 3)
    assert decoded_levels(read_clip({**row, "n_frames": None}, [1], backend="pyav")) == [1]
    folder = write_folder(tmp_path / "f", ["img1.png", "img2.png"], [30, 60])
    frow = {"clip_id": "f1", "path": str(folder), "media": "frames", "n_frames": 99}
    frames = read_clip(frow, [1], backend=backend)
    assert frames[0, 0, 0].tolist() == [60, 60, 60]
    assert decode_stats().clips["images"] == 1  # frame folders: not a video backend
    with pytest.raises(FrameSourceError, match="unknown video backend 'gpu'"):
        read_clip(row, [0], backend="gpu")  # a setting error, not a clip's
    with pytest.raises(FrameReadError, match="'v2'.*missing file"):
        read_clip({**row, "clip_id": "v2", "path": str(tmp_path / "nope.mp4")}, [0])
    with pytest.raises(FrameReadError, match="'v3'.*unknown media"):
        read_clip({**row, "clip_id": "v3", "media": "hologram"}, [0])
    with pytest.raises(FrameReadError, match="'v4'.*lacks"):
        read_clip({"clip_id": "v4", "media": "video"}, [0])


def test_centre_crop_by_hand():
    from emobench.video.frames import centre_crop

    frames = np.arange(2 * 6 * 8 * 3).reshape(2, 6, 8, 3)
    np.testing.assert_array_equal(centre_crop(frames, 4), frames[:, 1:5, 2:6])
    assert centre_crop(frames, 0) is frames and centre_crop(frames, 6) is frames
    np.testing.assert_array_equal(centre_crop(frames[0], 2), frames[0, 2:4, 3:5])


# --- synth clips read back ----------------------------------------------------------------


@pytest.mark.parametrize("side", [32, 48])
def test_synth_sizes_decord_mishandles_read_back(tmp_path: Path, side: int) -> None:
    """The generator accepts every even size >= 32 and checks its first clip reads back;
    every clip of the index then decodes with ``auto`` (and the reference)."""
    import polars as pl

    from emobench.data.synth.generate import SynthConfig, generate

    cfg = SynthConfig(n_train=7, n_test=7, size=side, min_seconds=1.0, max_seconds=1.0, fps=10)
    root = generate(cfg, tmp_path, progress=False, workers=1)
    ann = pl.read_csv(root / "annotations.csv")
    for row in ann.head(4).iter_rows(named=True):
        row = {**row, "path": str(root / row["path"]), "media": "video"}
        idx = np.arange(row["n_frames"])
        auto = read_clip(row, idx, size=side)
        ref = read_clip(row, idx, size=side, backend="pyav")
        assert auto.shape == (row["n_frames"], side, side, 3)
        assert np.abs(auto.astype(int) - ref).mean() <= 2.0


def test_synth_read_back_check(tmp_path: Path) -> None:
    from emobench.data.synth.generate import (
        SynthConfig,
        build_clip,
        check_read_back,
        clip_timeline,
        make_plan,
    )

    cfg = SynthConfig(n_train=7, n_test=7, size=32, min_seconds=1.0, max_seconds=1.0, seed=3)
    plan = make_plan(cfg)[0]
    row, _ = build_clip(cfg, plan, tmp_path)
    clip = tmp_path / f"{plan.clip_id}.mp4"
    check_read_back(cfg, plan, clip)  # the clip as rendered: passes
    n = clip_timeline(cfg, plan).n_frames
    assert row["n_frames"] == n
    grey = write_video(tmp_path / "grey.mp4", n=n, side=32)  # right length, wrong content
    with pytest.raises(EmobenchError, match="cannot be read back with PyAV as rendered: mean"):
        check_read_back(cfg, plan, grey)
    short = write_video(tmp_path / "short.mp4", n=n - 1, side=32)
    with pytest.raises(EmobenchError, match=f"annotation says {n} frames, the video has {n - 1}"):
        check_read_back(cfg, plan, short)
    clip.write_bytes(np.random.default_rng(0).integers(0, 256, 999, np.uint8).tobytes())
    with pytest.raises(EmobenchError, match="pyav: corrupt or undecodable"):
        check_read_back(cfg, plan, clip)


# --- frame folders: draft-mode JPEG decoding and the thread pool --------------------------


def _jpeg_folder(folder: Path, n: int = 8, side: int = 64) -> tuple[Path, list[np.ndarray]]:
    """JPEG frames with known content: a smooth gradient + a square that moves per frame."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    yy, xx = np.mgrid[0:side, 0:side]
    truth = []
    for i in range(n):
        img = np.stack([xx * 3, yy * 3, (xx + yy) * 2], axis=-1).astype(np.float64)
        img[8 + i : 24 + i, 10:30] = [220, 40, 90]
        arr = np.clip(img, 0, 255).astype(np.uint8)
        Image.fromarray(arr).save(folder / f"{i + 1}.jpg", quality=95)
        truth.append(arr)
    return folder, truth


@pytest.mark.parametrize("threads", [None, 1, 3])
def test_folder_jpeg_known_content_full_size(tmp_path: Path, threads: int | None) -> None:
    folder, truth = _jpeg_folder(tmp_path / "clip")
    idx = [7, 0, 3, 3, 5, 1]  # >= PARALLEL_MIN_FRAMES unique frames: the pool path
    got = FolderFrameSource(threads=threads).read(str(folder), idx)
    assert got.shape == (6, 64, 64, 3) and got.dtype == np.uint8
    diff = np.abs(got.astype(int) - np.stack([truth[i] for i in idx]).astype(int))
    assert diff.mean() < 2.0 and np.percentile(diff, 99) < 40  # JPEG (chroma at the edges)
    for k, i in enumerate(idx):  # the square sits where frame i put it: order kept
        assert np.abs(got[k, 12 + i, 20].astype(int) - [220, 40, 90]).max() <= 10


@pytest.mark.parametrize("size", [64, 32, 16, 24, 50, 100])
def test_folder_jpeg_resize_matches_pil_full_decode(tmp_path: Path, size: int) -> None:
    from PIL import Image

    folder, _ = _jpeg_folder(tmp_path / "clip", n=5)
    got = FolderFrameSource(size=size).read(str(folder), [4, 0, 2, 1, 3])
    for k, i in enumerate([4, 0, 2, 1, 3]):
        with Image.open(folder / f"{i + 1}.jpg") as im:
            ref = np.asarray(im.convert("RGB").resize((size, size), Image.Resampling.BILINEAR))
        diff = np.abs(got[k].astype(int) - ref.astype(int))
        assert diff.mean() < 2.5, (size, diff.mean())
        assert np.percentile(diff, 99) < 32, (size, np.percentile(diff, 99))


def test_folder_draft_decodes_at_reduced_scale(tmp_path: Path, monkeypatch) -> None:
    from PIL import Image, JpegImagePlugin

    folder, _ = _jpeg_folder(tmp_path / "clip", n=2, side=128)
    seen: list[tuple[int, int]] = []
    real = JpegImagePlugin.JpegImageFile.load

    def load(self):  # the size PIL decodes at, after draft
        seen.append(self.size)
        return real(self)

    monkeypatch.setattr(JpegImagePlugin.JpegImageFile, "load", load)
    FolderFrameSource(size=32, threads=1).read(str(folder), [0])
    assert seen[0] == (32, 32)  # 1/4 DCT scale, no full-size decode
    seen.clear()
    FolderFrameSource(threads=1).read(str(folder), [0])
    assert seen[0] == (128, 128)
    assert Image.open(folder / "1.jpg").size == (128, 128)


def test_folder_pool_errors_and_fork_safety(tmp_path: Path) -> None:
    folder, _ = _jpeg_folder(tmp_path / "clip", n=6)
    (folder / "4.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(FrameReadError, match="cannot decode image '4.jpg'") as info:
        FolderFrameSource(threads=2).read(str(folder), [0, 1, 2, 3, 4, 5], clip_id="c9")
    assert info.value.clip_id == "c9"
    with pytest.raises(FrameSourceError, match="threads"):
        FolderFrameSource(threads=0)
    pool = frames_mod._image_pool(2)
    assert pool is frames_mod._image_pool(2) and frames_mod._image_pool(1) is None
    assert (os.getpid(), 2) in frames_mod._POOLS
