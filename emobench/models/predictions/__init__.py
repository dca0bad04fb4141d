"""``predictions:<file>``: predictions made by other code (MAE-DFER, HiCMAE, an API model's
answers, ...) imported as the cells of a model, checked clip by clip against the dataset's
folds (:mod:`emobench.models.predictions.adapter`; scored by
:mod:`emobench.runner.imported`)."""
