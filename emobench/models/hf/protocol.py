"""What the helpers of the ``hf:`` family need of a model, as narrow protocols, so that the
dependencies point one way: :mod:`.adapter` (``HFModel``) imports the helpers, and no
helper imports the adapter. ``HFModel`` satisfies every protocol here."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

from emobench.chat.request import Request
from emobench.models.base import ClipInput


class ScoringModel(Protocol):
    """A loaded model that scores label answers (:mod:`.loglik`)."""

    name: str
    opts: Any
    labels: list[str]
    _model: Any
    _processor: Any
    _stats: dict[str, Any]

    def encode(self, reqs: list[Request]) -> tuple[Any, list[dict[str, Any]]]: ...

    def answer_ids(self) -> list[list[int]]: ...

    def _cache_kw(self) -> str: ...


class FineTunable(ScoringModel, Protocol):
    """What LoRA fine-tuning (:mod:`.finetune`) needs: the evaluation's request of a clip,
    the loglik scores, a fresh copy of the weights and a place to keep the adapted model."""

    _hash: str

    def _clip_request(self, clip: ClipInput) -> tuple[Request, str | None]: ...

    def _loglik(self, reqs: list[Request]) -> list[dict[str, Any]]: ...

    def load_fresh(self, device: Any) -> tuple[Any, Any]: ...

    def _install_adapted(self, peft_model: Any, rows: Any, fingerprint: str) -> None: ...


class BatchedModel(ScoringModel, Protocol):
    """What the batch loop (:mod:`.batching`) drives: encoding, generation and scoring."""

    lookahead: int
    _inner_batch: int
    _lengths: dict[int, int]
    _prepared: tuple[Any, Any, Any] | None

    def _estimate(self, req: Request) -> int: ...

    def _encode_staged(self, reqs: list[Request]) -> tuple[Any, list[dict[str, Any]]]: ...

    def _generate(self, reqs: list[Request], max_new_tokens: int) -> list[dict[str, Any]]: ...

    def _loglik(self, reqs: list[Request]) -> list[dict[str, Any]]: ...


class RecordedModel(Protocol):
    """What the cell record (:mod:`.records`) reads: the model folder and the stats."""

    name: str
    folder: Path
    describer: Any
    opts: Any
    labels: list[str]
    frame_size: int | None
    crop: int | None
    _hash: str
    _adapter: Any
    _processor: Any
    _stats: dict[str, Any]

    def _processor_kwargs(self) -> dict[str, Any]: ...

    def _attn_implementation(self) -> str | None: ...
