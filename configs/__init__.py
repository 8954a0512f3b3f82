"""ml_collections config files for train.py (`--config=configs/rgb.py[:paper|official|cpu]`)."""
