import polars as pl
import pytest

from emobench.data.index import ClipIndexError, class_counts, fingerprint, make_index
from emobench.labels import UnknownLabelError, canonical, from_official_index


def _row(i: int, label: str, split: str = "train", fold: int = 1) -> dict:
    return {
        "clip_id": f"c{i}",
        "path": f"/x/c{i}.mp4",
        "media": "video",
        "label": label,
        "split": split,
        "fold": fold,
        "n_frames": 50,
        "fps": 25.0,
    }


def test_canonical_aliases_and_unknown():
    assert canonical("Happy") == "happiness"
    assert canonical(" ANGRY ") == "anger"
    assert canonical("neutral") == "neutral"
    with pytest.raises(UnknownLabelError, match="bored"):
        canonical("bored")


def test_official_orders():
    # DFEW 1-based ids: 1 Happy ... 7 Fear
    assert [from_official_index("dfew", i) for i in (1, 3, 7)] == ["happiness", "neutral", "fear"]
    assert from_official_index("mafw", 10) == "helplessness"
    with pytest.raises(UnknownLabelError):
        from_official_index("dfew", 8)


def test_make_index_fills_optional_and_counts():
    idx = make_index([_row(0, "anger"), _row(1, "anger"), _row(2, "fear"), _row(3, "fear", "test")])
    assert idx["onset"].null_count() == 4
    assert idx.schema["fold"] == pl.Int64
    assert class_counts(idx) == {"anger": 2, "fear": 1}
    assert len(fingerprint(idx)) == 16


def test_fingerprint_ignores_paths_but_not_labels():
    a = make_index([_row(0, "anger"), _row(1, "fear")])
    b = a.with_columns(pl.lit("/elsewhere").alias("path"))
    c = a.with_columns(pl.lit("fear").alias("label"))
    assert fingerprint(a) == fingerprint(b) != fingerprint(c)


@pytest.mark.parametrize(
    "change, match",
    [
        ({"label": "bored"}, "label"),
        ({"split": "dev"}, "split"),
        ({"n_frames": 0}, "n_frames"),
        ({"media": "gif"}, "media"),
    ],
)
def test_validate_rejects_bad_values(change, match):
    with pytest.raises(ClipIndexError, match=match):
        make_index([{**_row(0, "anger"), **change}])


def test_validate_rejects_duplicates_and_missing_columns():
    with pytest.raises(ClipIndexError, match="twice"):
        make_index([_row(0, "anger"), _row(0, "fear")])
    from emobench.data.index import validate_index

    with pytest.raises(ClipIndexError, match="label"):
        validate_index(pl.DataFrame({"clip_id": ["a"]}))
