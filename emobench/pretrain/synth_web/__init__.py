"""``emobench pretrain synth-web``: the synthetic web pre-training of ``emobench-tiny``, the
default contrastive VLM (``openclip:emobench-tiny@synth-web``).

Modules: :mod:`.config` (the recipe), :mod:`.webpool` (rendered faces and their captions),
:mod:`.train` (contrastive training, saving), :mod:`.evaluate` (zero-shot UAR/WAR),
:mod:`.card` (the model card), :mod:`.command` (the whole run), :mod:`.cli` (the Typer
command). Importing this package is cheap; torch and open_clip load when training runs.
"""
