"""MSCE (:mod:`emobench.models.hf.msce`): the two stages with a fake describer, the cache.

Every source frame ``j`` of the test clips is a constant image of value ``j`` (plus a
per-pixel pattern), so which frames a describer call or a stage-2 item holds can be read
back from the pixels and compared with the clip's keyframes and ``between`` frames.
"""

from __future__ import annotations

import numpy as np
import pytest

from emobench.models.base import ClipInput
from emobench.models.hf.msce import (
    DEFAULT_DESCRIBE_PROMPT,
    NO_DESCRIPTION,
    DescriptionCache,
    clean_description,
    msce_content,
)
from emobench.video.sampling import between_indices

H = W = 6


def _frame(j: int) -> np.ndarray:
    f = np.full((H, W, 3), j, dtype=np.uint8)
    f[0, 0, 0] = 255 - j  # not a constant image: the whole frame matters
    return f


def _which(frame: np.ndarray) -> int:
    """The source index a test frame was made from."""
    j = int(frame[1, 1, 1])
    np.testing.assert_array_equal(frame, _frame(j))
    return j


def make_clip(keys, gap=3, enrichment="msce") -> ClipInput:
    keys = np.asarray(keys, dtype=np.int64)
    between = tuple(between_indices(a, b, gap) for a, b in zip(keys[:-1], keys[1:], strict=True))
    frames = lambda idx: (  # noqa: E731
        np.stack([_frame(int(j)) for j in idx]) if len(idx) else np.empty((0, H, W, 3), np.uint8)
    )
    return ClipInput(
        clip_id="c1",
        frames=frames(keys),
        indices=keys,
        fps=25.0,
        enrichment=enrichment,
        between=tuple(frames(b) for b in between),
        between_indices=between,
    )


class FakeChat:
    """Records each batch it is given; answers canned sentences (with reasoning/whitespace)."""

    def __init__(self, answers=None) -> None:
        self.calls: list[list[list[dict]]] = []
        self.answers = answers

    def __call__(self, contents):
        self.calls.append(contents)
        if self.answers is not None:
            return list(self.answers[len(self.calls) - 1])
        n = sum(len(c) for c in self.calls) - len(contents)  # answers so far
        return [f"<think>hmm</think>\n  Change {n + i}.  " for i in range(len(contents))]


@pytest.mark.parametrize("as_video", [False, True])
def test_stage1_one_batched_call_with_each_gaps_frames(as_video):
    clip = make_clip([2, 10, 11, 30], gap=3)
    chat = FakeChat()
    items, context, calls = msce_content(clip, chat, text_only=False, as_video=as_video)
    assert len(chat.calls) == 1 and calls == 3  # one chat call, three descriptions
    batch = chat.calls[0]
    assert len(batch) == 3
    for i, content in enumerate(batch):
        assert content[-1] == {"type": "text", "text": DEFAULT_DESCRIBE_PROMPT}
        visual = content[:-1]
        if as_video:
            assert [v["type"] for v in visual] == ["video"]
            frames = list(visual[0]["video"])
            assert visual[0]["video"].dtype == np.uint8 and visual[0]["video"].ndim == 4
        else:
            assert {v["type"] for v in visual} == {"image"}
            frames = [v["image"] for v in visual]
        want = [clip.indices[i], *clip.between_indices[i], clip.indices[i + 1]]
        assert [_which(f) for f in frames] == [int(j) for j in want]
        # exactly the engine's keyframes and in-between frames of this gap
        np.testing.assert_array_equal(frames[0], clip.frames[i])
        np.testing.assert_array_equal(frames[-1], clip.frames[i + 1])
        np.testing.assert_array_equal(np.reshape(frames[1:-1], (-1, H, W, 3)), clip.between[i])
    assert [len(c) - 1 for c in batch] == ([1, 1, 1] if as_video else [5, 2, 5])  # 10→11: none


def test_stage2_interleaves_keyframes_and_descriptions():
    clip = make_clip([0, 8, 16], gap=2)
    items, context, calls = msce_content(clip, FakeChat(), text_only=False)
    assert [it["type"] for it in items] == ["image", "text", "image", "text", "image"]
    assert [_which(it["image"]) for it in items[::2]] == [0, 8, 16]
    assert items[1]["text"] == "Between these frames: Change 0."
    assert items[3]["text"] == "Between these frames: Change 1."
    assert context == "Frame 1 → 2: Change 0.\nFrame 2 → 3: Change 1."
    assert calls == 2


def test_msce_text_has_no_images():
    clip = make_clip([0, 8, 16], gap=2, enrichment="msce-text")
    chat = FakeChat()
    items, context, calls = msce_content(clip, chat, text_only=True)
    assert items == [{"type": "text", "text": context}]
    assert context == "Frame 1 → 2: Change 0.\nFrame 2 → 3: Change 1."
    assert calls == 2 and len(chat.calls) == 1
    # the describer still saw the frames
    assert all(it["type"] == "image" for c in chat.calls[0] for it in c[:-1])


def test_presentation_order_reverse():
    """Gaps follow the presented order; in-between frames run from the earlier presented
    keyframe towards the later one (descending indices for a reversed clip)."""
    clip = make_clip([20, 10, 0], gap=2)
    chat = FakeChat()
    items, _, _ = msce_content(clip, chat, text_only=False, describe_prompt="How?")
    assert [[_which(v["image"]) for v in c[:-1]] for c in chat.calls[0]] == [
        [20, 17, 13, 10],
        [10, 7, 3, 0],
    ]
    assert chat.calls[0][0][-1]["text"] == "How?"
    assert [_which(it["image"]) for it in items[::2]] == [20, 10, 0]


def test_single_keyframe_needs_no_describer():
    clip = make_clip([5])
    chat = FakeChat()
    assert msce_content(clip, chat, text_only=False)[1:] == ("", 0)
    items, _, _ = msce_content(clip, chat, text_only=False)
    assert [it["type"] for it in items] == ["image"]
    assert msce_content(clip, chat, text_only=True) == ([], "", 0)
    assert chat.calls == []


def test_missing_between_frames_is_an_error():
    clip = make_clip([0, 8, 16])
    bad = ClipInput(clip_id="c", frames=clip.frames, indices=clip.indices, fps=25.0)
    with pytest.raises(ValueError, match="in-between frames"):
        msce_content(bad, FakeChat(), text_only=False)


def test_describer_answer_count_is_checked():
    clip = make_clip([0, 8, 16])
    with pytest.raises(ValueError, match="1 answers for 2 gaps"):
        msce_content(clip, FakeChat(answers=[["one"]]), text_only=False)


@pytest.mark.parametrize(
    "raw, want",
    [
        ("  The brows rise.\n", "The brows rise."),
        ("<think>\nlet me see\n</think>\n\nThe mouth opens.", "The mouth opens."),
        ("<THINK>a</THINK>x <think>b</think> y", "x y"),
        ("reasoning, opening tag in the prompt</think> Smiles more.", "Smiles more."),
        ("<think>cut off by the token limit", NO_DESCRIPTION),
        ("The eyes\n  narrow,\tthen relax.", "The eyes narrow, then relax."),
        ("", NO_DESCRIPTION),
        ("  \n ", NO_DESCRIPTION),
        ("<think>only reasoning</think>", NO_DESCRIPTION),
        (None, NO_DESCRIPTION),
    ],
)
def test_clean_description(raw, want):
    assert clean_description(raw) == want


def test_empty_answer_becomes_no_description():
    clip = make_clip([0, 8, 16])
    items, context, _ = msce_content(
        clip, FakeChat(answers=[["<think>x</think>", " ok "]]), text_only=False
    )
    assert items[1]["text"] == "Between these frames: (no description)"
    assert context == "Frame 1 → 2: (no description)\nFrame 2 → 3: ok"


def test_cache_hits_skip_the_describer(tmp_path):
    cache = DescriptionCache(tmp_path / "desc")
    clip = make_clip([0, 8, 16, 24], gap=2)
    chat = FakeChat()
    first = msce_content(clip, chat, text_only=False, cache=cache, describer_id="m@1")
    assert first[2] == 3 and len(chat.calls) == 1
    assert len(list((tmp_path / "desc").rglob("*.json"))) == 3
    assert not list((tmp_path / "desc").rglob("*.tmp"))

    again = FakeChat()
    second = msce_content(clip, again, text_only=False, cache=cache, describer_id="m@1")
    assert again.calls == [] and second[2] == 0
    assert second[1] == first[1]
    assert [it["type"] for it in second[0]] == [it["type"] for it in first[0]]
    # msce-text from the same cache: same descriptions, still no call
    text = msce_content(clip, again, text_only=True, cache=cache, describer_id="m@1")
    assert again.calls == [] and text[1] == first[1]

    # a shared gap (same frames, other clip) is a hit; only the new gap is sent
    other = make_clip([0, 8, 40], gap=2)
    chat3 = FakeChat()
    _, ctx, calls = msce_content(other, chat3, text_only=False, cache=cache, describer_id="m@1")
    assert calls == 1 and len(chat3.calls) == 1 and len(chat3.calls[0]) == 1
    assert [_which(v["image"]) for v in chat3.calls[0][0][:-1]] == [8, 19, 29, 40]
    assert ctx.splitlines()[0] == first[1].splitlines()[0]

    # another describer, prompt, or image/video form: misses
    for kw in (
        {"describer_id": "m@2"},
        {"describer_id": "m@1", "describe_prompt": "What changes?"},
        {"describer_id": "m@1", "as_video": True},
    ):
        c = FakeChat()
        assert msce_content(clip, c, text_only=False, cache=cache, **kw)[2] == 3
        assert len(c.calls) == 1


def test_cache_unreadable_entry_is_a_miss(tmp_path):
    cache = DescriptionCache(tmp_path)
    cache.put("ab" + "0" * 62, "Smiles.", raw=" Smiles. ")
    assert cache.get("ab" + "0" * 62) == "Smiles."
    cache.path("ab" + "1" * 62).parent.mkdir(parents=True, exist_ok=True)
    cache.path("ab" + "1" * 62).write_text("{not json")
    assert cache.get("ab" + "1" * 62) is None
    assert cache.get("cd" + "2" * 62) is None
