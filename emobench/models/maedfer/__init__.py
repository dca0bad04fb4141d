"""``maedfer:<checkpoint file or folder>``: MAE-DFER (LGI-Former) from its released
checkpoints, the released head per fold or fine-tuned here with every re-balancing recipe.
See :mod:`emobench.models.maedfer.adapter`."""
