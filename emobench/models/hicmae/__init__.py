"""HiCMAE (Sun et al., Information Fusion 2024) as the ``hicmae:`` model family."""
