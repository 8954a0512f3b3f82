"""Training an avatar (the program behind `train.py`): the loop (`loop.train_and_evaluate`), the stage steps and
render functions (`step`), the stages and optimizer (`optim`), the loss (`losses`), config checks (`validate`),
starting and resuming in a workdir (`resume`), multi-process set-up (`distributed`) and the in-training
evaluation (`evaluator`). What it shares with `hfagp.pretrain` lives in `hfagp.runtime`."""
