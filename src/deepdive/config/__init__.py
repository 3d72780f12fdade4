"""The configuration floor: TrainConfig, its one resolution, recipes, and every name and spec it validates
against. It imports nothing of deepdive above the ground floor."""
