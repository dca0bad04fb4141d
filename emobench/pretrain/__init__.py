"""The commands that build emobench's shipped tiny models, each a command's whole world:

* :mod:`.synth_web`: ``emobench pretrain synth-web``, the tiny CLIP
  ``openclip:emobench-tiny@synth-web`` pre-trained on a synthetic web pool;
* :mod:`.synth_vlm`: ``emobench pretrain synth-vlm``, the tiny generative VLM
  ``emobench-tiny-vlm`` (a Qwen2.5-VL that ``hf:`` loads), whose eyes are distilled from the
  tiny CLIP and whose captions come from the same web pool.

Their output ships in ``emobench/models/weights/``, where the ``openclip:`` and ``hf:``
families load it; nothing under ``emobench/models`` imports this package.
"""
