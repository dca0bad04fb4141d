"""The clip-level model protocol (generative VLMs) through the engine, with a test double.

``fake-clip:<mode>`` is a :class:`~emobench.models.base.ClipModel` registered here: it
records every clip it is shown and answers from the frames' known content, so the
engine's sampling, ordering, decoding, answer parsing, prior correction and the raw text
in the predictions table can be checked against values computed independently.
"""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from conftest import make_synth

from emobench.config import validate_config
from emobench.models.base import ClipInput, ClipModel, ClipOutput, FitContext
from emobench.models.registry import MODEL_FAMILIES, register_model
from emobench.results import RunFolder
from emobench.runner.clip_scorer import parse_answer
from emobench.runner.execute import Engine

SEEN: list[ClipInput] = []


class FakeClipModel(ClipModel):
    """Answers ``"<label>."`` (text mode), scores (scores mode) or nonsense (junk mode)."""

    frame_size = 32
    batch_size = 3

    def __init__(self, mode: str) -> None:
        self.mode = mode

    def fit(self, ctx: FitContext) -> None:
        self.labels = list(reversed(ctx.labels))  # another order than the dataset's
        self.train_clips = ctx.train_index.height

    def predict(self, clips: list[ClipInput]) -> list[ClipOutput]:
        SEEN.extend(clips)
        out = []
        for c in clips:
            # a deterministic function of the presented frames: their mean grey level
            k = int(c.frames.mean()) % len(self.labels)
            if self.mode == "text":
                out.append(ClipOutput(text=f"The person looks {self.labels[k].upper()}."))
            elif self.mode == "scores":
                s = np.zeros(len(self.labels))
                s[k] = 1.0
                out.append(ClipOutput(scores=s, text="ignored"))
            else:
                out.append(ClipOutput(text="I cannot tell, maybe happy or sad"))
        return out


@pytest.fixture(scope="module", autouse=True)
def fake_family():
    """Register ``fake-clip:<mode>`` for this module only."""
    modes = ("text", "scores", "junk")
    register_model(
        "fake-clip",
        "test double of a clip model",
        arguments=modes,
        kind="clip",
        gives_scores=lambda options: bool(options.get("gives_scores", True)),
    )(lambda arg, options: FakeClipModel(arg))
    yield
    MODEL_FAMILIES._entries.pop("fake-clip", None)


@pytest.fixture(scope="module")
def synth_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth")
    return make_synth(root, profile="exp:3", n_train=14, n_test=9, n_train_subjects=2, seed=7)


def _run(root, out, mode, sampler=("uniform:4",), **sweep):
    cfg = validate_config(
        {
            "name": "clip",
            "datasets": [{"name": "synth", "root": str(root)}],
            "models": [{"adapter": f"fake-clip:{mode}", "name": mode}],
            "sweep": {"sampler": list(sampler), "order": ["original", "reverse"], **sweep},
            "video": {"backend": "pyav"},
            "device": "cpu",
            "metrics": {"n_resamples": 0},
        }
    )
    SEEN.clear()
    engine = Engine(cfg, out, progress=False)
    engine.load_datasets()
    engine.execute()
    return RunFolder(out).read_predictions().sort(["cell_id", "clip_id"])


def test_text_answers_are_parsed_and_kept(synth_root, tmp_path):
    from emobench.video.frames import read_clip

    preds = _run(synth_root, tmp_path / "r", "text")
    index = pl.read_csv(synth_root / "annotations.csv", schema_overrides={"clip_id": pl.Utf8})
    test = index.filter(pl.col("split") == "test")
    assert preds.height == 2 * test.height
    labels = RunFolder(tmp_path / "r").read_manifest()["datasets"]["synth"]["labels"]
    model_labels = list(reversed(labels))
    seen = {(c.clip_id, tuple(c.indices)): c for c in SEEN}
    for row in preds.iter_rows(named=True):
        clip = next(c for (cid, _), c in seen.items() if cid == row["clip_id"])
        order = row["order"]
        shown = [c for (cid, idx), c in seen.items() if cid == row["clip_id"]]
        assert len(shown) == 2  # one per order
        orig, rev = sorted(shown, key=lambda c: list(c.indices) != sorted(c.indices))
        assert list(rev.indices) == list(orig.indices)[::-1]  # reverse = original reversed
        assert row["n_frames"] == 4 and len(clip.frames) == 4
        # the frames shown are the decoded frames at those indices (independent read)
        r = test.filter(pl.col("clip_id") == row["clip_id"]).row(0, named=True)
        r = {**r, "path": str(synth_root / r["path"]), "media": "video"}
        ref = read_clip(r, orig.indices, size=32, backend="pyav")
        np.testing.assert_array_equal(orig.frames, ref)
        want = model_labels[int(ref.mean()) % len(labels)]
        assert row["pred"] == want
        assert row["raw_text"] == f"The person looks {want.upper()}."
        assert all(row[f"score:{lb}"] is None for lb in labels)
        assert order in ("original", "reverse")


def test_scores_map_to_dataset_labels(synth_root, tmp_path):
    preds = _run(synth_root, tmp_path / "r", "scores")
    labels = RunFolder(tmp_path / "r").read_manifest()["datasets"]["synth"]["labels"]
    for row in preds.iter_rows(named=True):
        scores = [row[f"score:{lb}"] for lb in labels]
        assert sorted(scores) == [0.0] * (len(labels) - 1) + [1.0]
        assert row["pred"] == labels[int(np.argmax(scores))]
        assert row["raw_text"] == "ignored"


def test_unparseable_answers_are_invalid_not_errors(synth_root, tmp_path):
    preds = _run(synth_root, tmp_path / "r", "junk")
    assert set(preds["pred"]) == {"invalid"}
    metrics = RunFolder(tmp_path / "r").read_metrics()
    inv = metrics.filter((pl.col("metric") == "invalid_rate") & (pl.col("fold") == 1))
    assert inv["value"].to_list() == [1.0, 1.0]


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("Happy.", "happiness"),
        ("the answer is: ANGER", "anger"),
        ("she is sad, very sad", "sadness"),
        ("happy or sad", "invalid"),
        ("contempt", "invalid"),  # not one of the offered labels
        ("", "invalid"),
        (None, "invalid"),
        ("unhappy", "invalid"),  # a word, not the label
    ],
)
def test_parse_answer(text, want):
    assert parse_answer(text, ["happiness", "sadness", "anger", "neutral"]) == want


@pytest.mark.parametrize("enrichment", ["msce", "msce-text", "msce-dense"])
def test_enrichment_views(synth_root, tmp_path, enrichment):
    """msce/msce-text: keyframes + the in-between frames of each gap; msce-dense: all of them
    as one clip (K + G·(K−1) frames, in order)."""
    from emobench.video.frames import read_clip

    _run(synth_root, tmp_path / "r", "text", sampler=["uniform:3"], enrichment=[enrichment])
    index = pl.read_csv(synth_root / "annotations.csv", schema_overrides={"clip_id": pl.Utf8})
    g = FakeClipModel.gap_frames
    for clip in SEEN:
        assert clip.enrichment == enrichment
        r = index.filter(pl.col("clip_id") == clip.clip_id).row(0, named=True)
        r = {**r, "path": str(synth_root / r["path"]), "media": "video"}
        if enrichment == "msce-dense":
            assert clip.between == ()
            assert len(clip.indices) == 3 + g * 2  # gaps of 1 s clips hold more than G frames
            steps = np.diff(clip.indices)
            assert (steps > 0).all() or (steps < 0).all()  # in order, no repeats
        else:
            assert len(clip.indices) == 3 and len(clip.between) == 2
            for (a, b), idx, frames in zip(
                zip(clip.indices[:-1], clip.indices[1:], strict=True),
                clip.between_indices,
                clip.between,
                strict=True,
            ):
                assert len(idx) == g and all(min(a, b) < i < max(a, b) for i in idx)
                ref = read_clip(r, idx, size=32, backend="pyav")
                np.testing.assert_array_equal(frames, ref)


def test_enrichment_needs_a_clip_model_and_prior_correction_needs_scores(synth_root):
    from emobench.config import ConfigError

    base = {
        "datasets": [{"name": "synth", "root": str(synth_root)}],
        "sweep": {"enrichment": ["msce"]},
    }
    with pytest.raises(ConfigError, match=r"models.0 \(baseline:mean\) is a frame-features"):
        validate_config({**base, "models": [{"adapter": "baseline:mean"}]})
    ok = {"adapter": "fake-clip:text", "options": {"gives_scores": False}}
    validate_config({**base, "models": [ok]})
    with pytest.raises(ConfigError, match="prior correction 'logit-adjust' needs scores"):
        validate_config({**base, "models": [{**ok, "prior_correction": ["none", "logit-adjust"]}]})
