"""MSCE (:mod:`emobench.chat.msce`): the two stages with a fake describer, the cache.

Every source frame ``j`` of the test clips is a constant image of value ``j`` (plus a
per-pixel pattern), so which frames a describer call or a stage-2 item holds can be read
back from the pixels and compared with the clip's keyframes and ``between`` frames.
"""

from __future__ import annotations

import numpy as np
import pytest

from emobench.chat.msce import (
    DEFAULT_DESCRIBE_PROMPT,
    NO_DESCRIPTION,
    DescriptionCache,
    clean_description,
    msce_content,
)
from emobench.models.base import ClipInput
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
    assert items == [{"type": "text", "text": context + "\n"}]
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
        ("a\x0e\x00b\x7f c\u200b", "ab c\u200b"),
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


# ---------------------------------------------------------------- end to end (tiny Qwen2.5-VL)


@pytest.fixture(scope="module")
def tiny_qwen(tmp_path_factory):
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    import os

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    from hf_tiny import build_qwen25_vl

    return build_qwen25_vl(tmp_path_factory.mktemp("hf-models") / "qwen")


@pytest.fixture(scope="module")
def msce_synth(tmp_path_factory):
    from conftest import make_synth

    root = tmp_path_factory.mktemp("synth")
    return make_synth(root, profile="exp:3", n_train=7, n_test=7, n_train_subjects=2, seed=5)


def _tokenizer(folder):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(folder)


class ProcessorLog:
    """Wraps the Qwen2.5-VL processor's ``__call__``: every row it encodes (input ids without
    padding, and the number of images and videos of that row)."""

    def __init__(self, monkeypatch) -> None:
        from transformers import Qwen2_5_VLProcessor

        self.rows: list[tuple[list[int], int, int]] = []
        original = Qwen2_5_VLProcessor.__call__
        log = self

        def call(self, *args, **kw):
            enc = original(self, *args, **kw)
            images = kw.get("images") or [[]] * len(enc["input_ids"])
            n_vid = [0] * len(enc["input_ids"])
            for i, text in enumerate(kw["text"]):
                n_vid[i] = text.count("<|video_pad|>")
            for ids, mask, imgs, nv in zip(
                enc["input_ids"].tolist(),
                enc["attention_mask"].tolist(),
                images,
                n_vid,
                strict=True,
            ):
                log.rows.append(([t for t, m in zip(ids, mask, strict=True) if m], len(imgs), nv))
            return enc

        monkeypatch.setattr(Qwen2_5_VLProcessor, "__call__", call)

    def split(self, ids: list[int], tok) -> tuple[list[int], list[str]]:
        """(lengths of the image-pad runs, decoded text between consecutive runs)."""
        pad = tok.convert_tokens_to_ids("<|image_pad|>")
        runs: list[tuple[int, int]] = []
        for j, t in enumerate(ids):
            if t == pad:
                if runs and runs[-1][1] == j:
                    runs[-1] = (runs[-1][0], j + 1)
                else:
                    runs.append((j, j + 1))
        gaps = [tok.decode(ids[a[1] : b[0]]) for a, b in zip(runs[:-1], runs[1:], strict=True)]
        return [b - a for a, b in runs], gaps


def test_msce_end_to_end_through_the_engine(tiny_qwen, msce_synth, tmp_path, monkeypatch):
    """All four enrichments through the engine with a tiny random Qwen2.5-VL: the stage-2
    prompt's tokens alternate image runs and "Between these frames: <d>" in order, the
    descriptions are those stored in the predictions' context, msce-text sends no image,
    msce-dense more images, none plain keyframes."""
    from emobench.config import validate_config
    from emobench.models.hf import adapter as hf
    from emobench.results import RunFolder
    from emobench.runner.execute import Engine

    log = ProcessorLog(monkeypatch)
    options = {
        "input": "images",
        "scoring": "generate",
        "max_new_tokens": 2,
        "msce_max_new_tokens": 5,
        "gap_frames": 2,
        "batch_size": 4,
    }
    cfg = validate_config(
        {
            "name": "msce",
            "datasets": [{"name": "synth", "root": str(msce_synth)}],
            "models": [{"adapter": f"hf:{tiny_qwen}", "name": "vlm", "options": options}],
            "sweep": {
                "sampler": ["uniform:3"],
                "order": ["original"],
                "enrichment": ["none", "msce", "msce-text", "msce-dense"],
            },
            "cache": {"dir": str(tmp_path / "cache")},
            "video": {"backend": "pyav"},
            "device": "cpu",
            "metrics": {"n_resamples": 0},
        }
    )
    engine = Engine(cfg, tmp_path / "run", progress=False)
    engine.load_datasets()
    engine.execute()
    preds = RunFolder(tmp_path / "run").read_predictions().sort("clip_id")
    by = {
        e: preds.filter(preds["enrichment"] == e)
        for e in ("none", "msce", "msce-text", "msce-dense")
    }
    n = by["none"].height
    assert n == 7 and all(df.height == n for df in by.values())
    assert by["none"]["context"].null_count() == n == by["msce-dense"]["context"].null_count()
    ctx = by["msce"]["context"].to_list()
    assert ctx == by["msce-text"]["context"].to_list()  # one describer, the same descriptions
    for c in ctx:
        lines = c.split("\n")
        assert [ln.split(":")[0] for ln in lines] == ["Frame 1 → 2", "Frame 2 → 3"]
        assert all(ln.split(": ", 1)[1] for ln in lines)
    want = {tuple(ln.split(": ", 1)[1] for ln in c.split("\n")) for c in ctx}

    tok = _tokenizer(tiny_qwen)
    prompt = "Describe how the person's facial expression changes across these frames."
    kinds: dict[str, list] = {"describe": [], "msce": [], "msce-text": [], "plain": []}
    for ids, n_img, n_vid in log.rows:
        text = tok.decode(ids)
        runs, gaps = log.split(ids, tok)
        assert len(runs) == n_img and n_vid == 0 and all(r > 0 for r in runs)
        if prompt in text:
            kinds["describe"].append((runs, gaps, text))
        elif "Between these frames:" in text:
            kinds["msce"].append((runs, gaps, text))
        elif "Frame 1 → 2:" in text:
            kinds["msce-text"].append((runs, gaps, text))
        else:
            kinds["plain"].append((runs, gaps, text))
    # stage 1: one row per gap (7 clips × 2 gaps): keyframe, ≤ 2 in-between frames, keyframe,
    # then the prompt; nothing but the vision markers between the images
    assert len(kinds["describe"]) == 2 * n
    for runs, gaps, text in kinds["describe"]:
        assert 2 <= len(runs) <= 4
        assert all(g == "<|vision_end|><|vision_start|>" for g in gaps)
        assert text.rindex("<|image_pad|>") < text.index(prompt) < text.index("<|im_end|>")
    # stage 2 (msce): image run, "Between these frames: d1", image run, "... d2", image run,
    # then the question — with the descriptions stored in the predictions
    assert len(kinds["msce"]) == n
    got = set()
    for runs, gaps, text in kinds["msce"]:
        assert len(runs) == 3
        pre, post = "<|vision_end|>Between these frames: ", "<|vision_start|>"
        assert all(g.startswith(pre) and g.endswith(post) for g in gaps)
        got.add(tuple(g[len(pre) : -len(post)] for g in gaps))
        assert text.rindex("<|image_pad|>") < text.index(hf.DEFAULT_QUESTION)
    assert got == want
    # msce-text: the description lines, then the question; no image
    # (a random model describes many gaps alike: identical msce-text prompts are answered
    # from the adapter's answer cache)
    assert 1 <= len(kinds["msce-text"]) <= n
    for runs, _, text in kinds["msce-text"]:
        assert runs == []
        assert text.index("Frame 1 → 2: ") < text.index("Frame 2 → 3: ")
        assert text.index("Frame 2 → 3: ") < text.index(hf.DEFAULT_QUESTION)
    got_text = {
        tuple(
            ln.split(": ", 1)[1]
            for ln in text.split("<|im_start|>user\n")[1].split(hf.DEFAULT_QUESTION)[0].splitlines()
            if ln.startswith("Frame ")
        )
        for _, _, text in kinds["msce-text"]
    }
    assert got_text == want
    # none: 3 keyframes; msce-dense: the keyframes and up to 2 frames per gap, one clip
    plain = sorted(len(runs) for runs, _, _ in kinds["plain"])
    assert len(plain) == 2 * n and plain[:n] == [3] * n
    dense = by["msce-dense"]["n_frames"].to_list()
    assert sorted(dense) == plain[n:] and all(3 < d <= 7 for d in dense)
    assert all(d["n_frames"] == 3 for d in by["none"].iter_rows(named=True))
    info = RunFolder(tmp_path / "run").read_manifest()["cell_info"]
    calls = {c: f["1"].get("describer_calls", 0) for c, f in info.items()}
    assert sorted(calls.values()) == [0, 0, 2 * n, 2 * n]


def test_msce_stage1_as_video_through_the_adapter(tiny_qwen, tmp_path, monkeypatch):
    """``input = "video"``: each gap goes to the describer as one video of its G+2 frames
    (an odd count too); stage 2 still shows the keyframes as images."""
    import torch

    from emobench.models.base import FitContext
    from emobench.models.hf import adapter as hf

    log = ProcessorLog(monkeypatch)
    m = hf.HFModel(str(tiny_qwen), {"input": "video", "msce_max_new_tokens": 3, "cache": False})
    m.fit(
        FitContext(
            dataset="synth",
            fold=1,
            seed=0,
            rebalancing="none",
            labels=["anger", "happiness", "sadness"],
            train_index=None,
            checkpoint_dir=tmp_path / "ckpt",
            device=torch.device("cpu"),
            train_options={},
            load_frames=None,
            load_features=None,
            cache_dir=tmp_path / "cache",
        )
    )
    m.reset_stats()
    clip = make_clip([0, 10, 20], gap=3)  # 5 frames per gap
    big = lambda a: np.repeat(np.repeat(a, 6, axis=-3), 6, axis=-2)  # noqa: E731  36 px frames
    clip = ClipInput(
        **{
            **clip.__dict__,
            "frames": big(clip.frames),
            "between": tuple(big(b) for b in clip.between),
        }
    )
    (out,) = m.predict([clip])
    assert out.context is not None and out.context.startswith("Frame 1 → 2: ")
    assert m.describe()["describer_calls"] == 2
    video_rows = [r for r in log.rows if r[2]]
    assert [(n_img, n_vid) for _, n_img, n_vid in video_rows] == [(0, 1), (0, 1)]
    (stage2,) = [r for r in log.rows if not r[2]]
    runs, gaps = log.split(stage2[0], _tokenizer(tiny_qwen))
    assert len(runs) == 3 and all("Between these frames: " in g for g in gaps)
