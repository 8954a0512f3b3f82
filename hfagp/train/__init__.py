"""Training an avatar: the step (`step`), the stages and optimizer (`optim`), the loss (`losses`), the loop
(`loop.train_and_evaluate`, behind `train.py`), checkpoints, config checks, summaries and the in-training
evaluation."""
