"""Training: the one loop (loop.py) and its state, engines, optimizers, schedules, EMA, fine-tuning, threads,
signals; setup.py builds a run from its TrainConfig; ddp/ holds data-parallel training as a process group the
loop is handed."""
