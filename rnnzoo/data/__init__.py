"""Data: TF-free tokenizers and readers; tf.data pipelines live in ``rnnzoo.data.pipeline``."""
