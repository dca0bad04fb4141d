"""``hfvideo:<model id or local folder>``: pretrained video classifiers (VideoMAE, TimeSformer,
ViViT, V-JEPA 2 through ``AutoModelForVideoClassification``) fine-tuned on each fold, or
probed linearly on their frozen features: the MAE-DFER / HiCMAE-style vision-only
comparison. See :mod:`emobench.models.hfvideo.adapter`."""
