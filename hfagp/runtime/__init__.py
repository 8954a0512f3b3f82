"""What the programs that train (`hfagp.train`, `hfagp.pretrain`) share: the train state and the generic train
step (`step`), orbax checkpoints and the metrics log (`checkpointing`), TensorBoard and the progress bar
(`summaries`), stop requests and training errors (`stopping`), and config values as dotted keys (`config_keys`)."""
