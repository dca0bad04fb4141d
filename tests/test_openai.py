"""The ``openai:`` family against a local OpenAI-compatible server started by the tests.

The server (:class:`FakeServer`, a ``ThreadingHTTPServer`` on 127.0.0.1 that stops by
itself after a minute) validates every request body against the official client's
request types (``openai.types.chat.completion_create_params``) and the API key, answers
deterministically (the option at position ``number of images`` of the prompt's option
list), and can be told to answer 429, 500, slowly, or to refuse videos.
"""

from __future__ import annotations

import base64
import io
import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
from conftest import make_synth, zero_shot_context

openai = pytest.importorskip("openai")

from emobench.config import validate_config  # noqa: E402
from emobench.errors import EmobenchError  # noqa: E402
from emobench.models.base import ClipInput  # noqa: E402
from emobench.models.openai import adapter as oa  # noqa: E402
from emobench.models.openai.options import label_scores  # noqa: E402
from emobench.results import RunFolder  # noqa: E402
from emobench.runner.execute import Engine  # noqa: E402

KEY = "sk-test-0123456789abcdef-secret"
ENV = "EMOBENCH_TEST_OPENAI_KEY"
MODEL = "tiny-vlm"
SERVED = "tiny-vlm-2025-served"
LABELS = ["anger", "disgust", "fear", "happiness", "neutral", "sadness", "surprise"]
DESCRIPTION = "The smile widens."


def _validate(body: dict, accept_video: bool) -> tuple[list[dict], str | None]:
    """The body checked with the official request types; the user turn's parts."""
    from openai.types.chat import ChatCompletionContentPartParam, ChatCompletionMessageParam
    from openai.types.chat.completion_create_params import CompletionCreateParamsNonStreaming
    from pydantic import TypeAdapter

    msgs = body.get("messages")
    assert isinstance(msgs, list) and len(msgs) == 1, "one user message"
    parts = msgs[0]["content"]
    videos = [p for p in parts if p.get("type") == "video_url"]
    if videos and not accept_video:
        return [], "video_url is not supported"
    # the official types (their message lists are lazy iterables: checked piece by piece)
    params = TypeAdapter(CompletionCreateParamsNonStreaming).validate_python(
        {**body, "messages": []}
    )
    message = TypeAdapter(ChatCompletionMessageParam).validate_python({**msgs[0], "content": ""})
    assert message["role"] == "user" and parts
    part_type = TypeAdapter(ChatCompletionContentPartParam)
    for p in parts:
        if p.get("type") != "video_url":
            part_type.validate_python(p)
    assert params["model"] == MODEL
    assert isinstance(params["max_tokens"], int) and params["max_tokens"] > 0
    assert params["temperature"] == 0
    for p in parts:
        if p["type"] == "image_url":
            assert re.match(r"data:image/(jpeg|png);base64,", p["image_url"]["url"])
    for v in videos:
        assert v["video_url"]["url"].startswith("data:video/mp4;base64,")
    return parts, None


class FakeServer:
    def __init__(self) -> None:
        self.script: list[str] = []  # "429" | "500" | "slow": the next answers' behaviour
        self.slow_s = 1.0
        self.accept_video = False
        self.bodies: list[dict] = []
        self.errors: list[str] = []
        self.video_frames: list[int] = []
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def _send(self, code: int, obj: dict) -> None:
                data = json.dumps(obj).encode()
                try:
                    self.send_response(code)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except OSError:  # the client gave up (timeout)
                    pass

            def do_POST(self):  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with server.lock:
                    server.bodies.append(body)
                    step = server.script.pop(0) if server.script else ""
                if self.path != "/v1/chat/completions":
                    return self._send(404, {"error": {"message": "no such path"}})
                if self.headers.get("Authorization") != f"Bearer {KEY}":
                    server.errors.append("bad key")
                    return self._send(401, {"error": {"message": "bad key"}})
                if step in ("429", "500"):
                    return self._send(int(step), {"error": {"message": f"scripted {step}"}})
                if step == "slow":
                    time.sleep(server.slow_s)
                try:
                    parts, refused = _validate(body, server.accept_video)
                except Exception as exc:  # noqa: BLE001
                    server.errors.append(repr(exc)[:300])
                    return self._send(400, {"error": {"message": "invalid request"}})
                if refused:
                    return self._send(400, {"error": {"message": refused}})
                self._send(200, server.answer(body, parts))

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.timer = threading.Timer(60.0, self.httpd.shutdown)  # bounded lifetime

    def answer(self, body: dict, parts: list[dict]) -> dict:
        n_images = sum(p["type"] == "image_url" for p in parts)
        for p in parts:
            if p["type"] == "video_url":
                import av

                raw = base64.b64decode(p["video_url"]["url"].split(",", 1)[1])
                with av.open(io.BytesIO(raw)) as c:
                    n = sum(1 for _ in c.decode(video=0))
                self.video_frames.append(n)
                n_images += n
        text = " ".join(p["text"] for p in parts if p["type"] == "text")
        match = re.search(r"Options: (.*)\.\n", text)
        if match:
            options = match.group(1).split(", ")
            answer = options[n_images % len(options)]
        else:
            answer = DESCRIPTION
        message = {"role": "assistant", "content": answer.capitalize()}
        choice = {"index": 0, "message": message, "finish_reason": "stop", "logprobs": None}
        if body.get("logprobs"):
            top = [{"token": answer[:3].capitalize(), "logprob": -0.25, "bytes": None}]
            top += [{"token": " zz", "logprob": -3.0, "bytes": None}]
            top = top[: body.get("top_logprobs") or 1]
            choice["logprobs"] = {
                "content": [{**top[0], "top_logprobs": top}],
                "refusal": None,
            }
        return {
            "id": "cmpl-1",
            "object": "chat.completion",
            "created": 0,
            "model": SERVED,
            "choices": [choice],
            "usage": {"prompt_tokens": 10 + n_images, "completion_tokens": 1, "total_tokens": 11},
        }

    def __enter__(self) -> FakeServer:
        self.thread.start()
        self.timer.start()
        return self

    def __exit__(self, *exc) -> None:
        self.timer.cancel()
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server(monkeypatch):
    monkeypatch.setenv(ENV, KEY)
    with FakeServer() as s:
        yield s
    assert not s.errors, s.errors


@pytest.fixture(scope="module")
def synth_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth")
    return make_synth(root, profile="exp:3", n_train=7, n_test=7, n_train_subjects=2, seed=3)


def _opts(server, **kw):
    return {"base_url": server.url, "api_key_env": ENV, "retry_backoff": 0.01, **kw}


def _cfg(root, cache, options, order=("original",), **sweep):
    return validate_config(
        {
            "name": "oa",
            "datasets": [{"name": "synth", "root": str(root)}],
            "models": [{"adapter": f"openai:{MODEL}", "name": "api", "options": options}],
            "sweep": {"sampler": ["uniform:4"], "order": list(order), **sweep},
            "cache": {"dir": str(cache)},
            "video": {"backend": "pyav"},
            "device": "cpu",
            "metrics": {"n_resamples": 0},
        }
    )


def _run(cfg, out):
    engine = Engine(cfg, out, progress=False)
    engine.load_datasets()
    return engine.execute()


def _info(out):
    return [f["1"] for f in RunFolder(out).read_manifest()["cell_info"].values()]


def _preds(out):
    df = RunFolder(out).read_predictions()
    cols = ["cell_id", "clip_id", "pred", "raw_text"]
    cols += [c for c in df.columns if c.startswith("score:") or c == "context"]
    return df.select(cols).sort(["cell_id", "clip_id"])


def _no_key_anywhere(*roots: Path) -> None:
    for root in roots:
        for p in Path(root).rglob("*"):
            if p.is_file():
                assert KEY.encode() not in p.read_bytes(), p


@pytest.mark.parametrize("scoring", ["generate", "loglik"])
def test_end_to_end_then_a_rerun_sends_nothing(server, synth_root, tmp_path, scoring):
    opts = _opts(server, scoring=scoring, option_order="permuted", concurrency=3)
    cfg = _cfg(synth_root, tmp_path / "cache", opts)
    _run(cfg, tmp_path / "a")
    preds = _preds(tmp_path / "a")
    assert preds.height == 7
    (info,) = _info(tmp_path / "a")
    assert info["requests"] == 7 and info["retries"] == 0 and info["cache_hits"] == 0
    assert info["server_model"] == SERVED and info["model"] == f"openai:{MODEL}"
    assert info["usage"] == {"prompt_tokens": 7 * (10 + 4), "completion_tokens": 7}
    assert info["frames_per_clip"]["mean"] == 4 and info["distinct_option_orders"] > 1
    # the server answers the option at position 4 (four images) of each clip's own order
    model = oa.OpenAIModel(MODEL, opts)
    model.labels = RunFolder(tmp_path / "a").read_manifest()["datasets"]["synth"]["labels"]
    want = [model.clip_options(c)[4] for c in preds["clip_id"]]
    assert preds["pred"].to_list() == want
    if scoring == "loglik":
        assert all(b["logprobs"] and b["max_tokens"] == 1 for b in server.bodies)
        scores = preds.select([c for c in preds.columns if c.startswith("score:")]).to_numpy()
        assert np.isfinite(scores).all()
        assert (np.sort(scores, axis=1)[:, -1] == -0.25).all()
    # a new run folder with the same cache: no request, the same predictions
    sent = oa.REQUESTS["sent"]
    _run(cfg, tmp_path / "b")
    assert oa.REQUESTS["sent"] == sent and len(server.bodies) == 7
    assert _preds(tmp_path / "b").equals(preds)
    (info_b,) = _info(tmp_path / "b")
    assert (info_b["requests"], info_b["cache_hits"]) == (0, 7)
    _no_key_anywhere(tmp_path)


def _ctx(tmp_path, labels=LABELS):
    return zero_shot_context(tmp_path, labels)


def _clips(n=3, k=4, seed=0):
    rng = np.random.default_rng(seed)
    return [
        ClipInput(
            clip_id=f"c{i}",
            frames=rng.integers(0, 255, (k, 32, 32, 3), dtype=np.uint8),
            indices=np.arange(k) * 2,
            fps=10.0,
        )
        for i in range(n)
    ]


def test_429_500_and_timeouts_are_retried_with_back_off(server, tmp_path):
    server.script = ["429", "500", "slow"]
    server.slow_s = 1.0
    m = oa.OpenAIModel(MODEL, _opts(server, concurrency=1, retry_backoff=0.1, timeout=0.4))
    m.fit(_ctx(tmp_path))
    t0 = time.monotonic()
    outs = m.predict(_clips(2))
    elapsed = time.monotonic() - t0
    assert [o.text for o in outs] == ["Neutral", "Neutral"]
    info = m.describe()
    assert (info["requests"], info["retries"]) == (5, 3)
    assert elapsed >= 0.1 + 0.2 + 0.4 + 0.4  # back-off 0.1, 0.2, 0.4 s and one timeout
    # out of retries: one error line
    server.script = ["500", "500"]
    m = oa.OpenAIModel(MODEL, _opts(server, max_retries=1, cache=False))
    m.fit(_ctx(tmp_path))
    with pytest.raises(EmobenchError, match=r"answered 500 after 2 attempts") as err:
        m.predict(_clips(1))
    assert "\n" not in str(err.value) and KEY not in str(err.value)


def test_requests_per_minute_paces_the_requests(server, tmp_path):
    m = oa.OpenAIModel(MODEL, _opts(server, requests_per_minute=300, concurrency=4))
    m.fit(_ctx(tmp_path))
    t0 = time.monotonic()
    m.predict(_clips(4))
    assert time.monotonic() - t0 >= 3 * 0.2 - 0.01


def test_video_input_and_the_fallback_to_images(server, tmp_path):
    server.accept_video = True
    m = oa.OpenAIModel(MODEL, _opts(server, input="video", cache=False))
    m.fit(_ctx(tmp_path))
    assert [o.text for o in m.predict(_clips(2))] == ["Neutral", "Neutral"]
    assert server.video_frames == [4, 4]
    assert m.describe()["video_fallback"] is False
    server.accept_video = False
    m = oa.OpenAIModel(MODEL, _opts(server, input="video", cache=False, concurrency=1))
    m.fit(_ctx(tmp_path))
    assert [o.text for o in m.predict(_clips(2))] == ["Neutral", "Neutral"]
    info = m.describe()
    assert info["video_fallback"] is True and info["requests"] == 3  # one refused
    assert all(p["type"] != "video_url" for p in server.bodies[-1]["messages"][0]["content"])


def test_msce_describes_the_gaps_with_the_same_server(server, synth_root, tmp_path):
    cfg = _cfg(synth_root, tmp_path / "cache", _opts(server), enrichment=["msce", "msce-text"])
    _run(cfg, tmp_path / "a")
    preds = _preds(tmp_path / "a")
    assert preds.height == 14 and preds["context"].null_count() == 0
    assert all(c.count(DESCRIPTION) == 3 for c in preds["context"])
    calls = sorted(i["describer_calls"] for i in _info(tmp_path / "a"))
    assert calls[-1] == 7 * 3  # the first cell describes every gap; the other reuses them
    n = len(server.bodies)
    _run(cfg, tmp_path / "b")
    assert len(server.bodies) == n
    assert _preds(tmp_path / "b").equals(preds)
    _no_key_anywhere(tmp_path)


def test_missing_key_variable_and_bad_options_are_one_error_line(tmp_path, monkeypatch):
    monkeypatch.delenv(ENV, raising=False)
    m = oa.OpenAIModel(MODEL, {"base_url": "http://127.0.0.1:9/v1", "api_key_env": ENV})
    with pytest.raises(EmobenchError, match=f"api_key_env names '{ENV}'"):
        m.fit(_ctx(tmp_path))
    with pytest.raises(EmobenchError, match="base_url"):
        oa.OpenAIModel(MODEL, {})
    with pytest.raises(EmobenchError, match="api_key"):
        oa.OpenAIModel(MODEL, {"base_url": "http://x/v1", "api_key": KEY})


def test_label_scores_from_first_token_logprobs():
    s = label_scores([["Sad", -0.1], [" Happ", -1.0], ["x", -5.0]], LABELS)
    assert np.argmax(s) == LABELS.index("sadness")
    assert s[LABELS.index("happiness")] == -1.0 and s[LABELS.index("anger")] == -6.0
