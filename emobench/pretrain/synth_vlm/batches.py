"""Training batches of corpus examples, processed exactly as the ``hf:`` family sends a
request, with the answer tokens as the only labels."""

from __future__ import annotations

from typing import Any

from emobench.errors import PretrainError
from emobench.models.hf.options import chat_inputs
from emobench.pretrain.synth_vlm.corpus import Example


def encode_batch(processor: Any, examples: list[Example]) -> tuple[Any, int]:
    """The processor's training batch for ``examples`` (right-padded) with ``labels``:
    the answer tokens and the closing ``<|im_end|>``, everything else -100.

    The prompt is rendered with the chat template and processed exactly as
    :meth:`emobench.models.hf.adapter.HFModel.encode` does it; the answer ids are those
    the tokenizer gives the answer alone (what ``loglik`` scores), appended after the
    prompt's ``assistant\\n``. Returns the batch and its number of answer tokens.
    """
    import torch

    tok = processor.tokenizer
    end = tok.convert_tokens_to_ids("<|im_end|>")
    texts, images, videos, metas, answers = [], [], [], [], []
    for ex in examples:
        prompt, imgs, vids, ms = chat_inputs(processor, ex.content, ex.fps)
        texts.append(prompt + ex.answer + "<|im_end|>")
        answers.append([*tok(ex.answer, add_special_tokens=False)["input_ids"], end])
        images.append(imgs)
        videos += vids
        metas += ms
    kw: dict[str, Any] = {"text": texts, "return_tensors": "pt", "padding": True}
    if any(images):
        kw["images"] = images
    if videos:
        kw.update(videos=videos, video_metadata=metas, do_sample_frames=False)
    side = tok.padding_side
    tok.padding_side = "right"
    try:
        enc = processor(**kw)
    finally:
        tok.padding_side = side
    ids = enc["input_ids"]
    labels = torch.full_like(ids, -100)
    lengths = enc["attention_mask"].sum(1).tolist()
    for b, (ans, n) in enumerate(zip(answers, lengths, strict=True)):
        got = ids[b, n - len(ans) : n].tolist()
        if got != ans:  # the joint tokenization must split where the answer starts
            raise PretrainError(f"answer tokens differ in context: {got} vs {ans}")
        labels[b, n - len(ans) : n] = ids[b, n - len(ans) : n]
    enc["labels"] = labels
    return enc, sum(len(a) for a in answers)


__all__ = ["encode_batch"]
