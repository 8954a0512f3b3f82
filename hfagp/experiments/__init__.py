"""The paper's experiments in miniature on the head world, with the ground truth the paper never had
(`python -m hfagp.experiments`); see `hfagp.experiments.runner`."""
