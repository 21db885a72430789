"""Handwriting recognition (task type ``handwriting-recognition``): online handwriting (pen
trajectories of one text line) -> its text, trained with CTC. Ink is read from the IAM-OnDB
npz/tsv form, IAM-OnDB line XML, W3C InkML or a list of ``[n, 2]``/``[n, 3]`` stroke arrays;
it becomes Graves-style point features (height-normalised, resampled to equidistant points,
deltas, pen flags) that a recurrent network maps to per-frame log-probabilities over the
alphabet plus the blank. Decoding, scoring, the CTC loss and the training batches are the
speech recognizer's (``rnnzoo.engines.ctc``, ``rnnzoo.layers.ctc``): the two applications
differ in readers and features only. User call ``recognize(strokes | files)``; CLI verb
``rnnzoo recognize``."""
