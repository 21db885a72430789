"""Text classification: raw strings -> a label and class probabilities (sentiment, topics).

User call (Keras and runtime alike): ``predict(texts) -> Prediction(labels, probs)``, and
``evaluate(texts, labels)`` (accuracy, macro-F1, confusion matrix); CLI verb ``rnnzoo predict``.
One exported graph: post-padded int32 ``tokens`` -> ``probs``. Class names are stored with the
model (``assets/labels.json``) so predictions come back as labels. Data: MR, GLUE SST-2 (a
folder, or one TSV file), class folders, or a CSV/TSV file with ``text`` and ``label`` columns
(``rnnzoo.data.readers``).
"""
