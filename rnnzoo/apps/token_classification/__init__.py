"""Token classification: a tag per token (named entities, part of speech, chunks).

User call (Keras and runtime alike): ``tag(sentences) -> [Tagged(tokens, tags, entities)]``,
and ``evaluate(sentences, tags)``; CLI verb ``rnnzoo tag``. A sentence is a string (split into
tokens, entities get character offsets) or a list of tokens. One exported graph: post-padded
int32 ``words`` [batch, time] and ``chars`` [batch, time, chars] -> ``emissions``
[batch, time, tags]. A CRF model's transition scores are stored in the bundle and decoded with
``viterbi`` (numpy) on both sides, so Keras and the runtime give the same tags from the same
scores.

Scores: entity-level micro precision/recall/F1 with conlleval semantics (seqeval's default
mode, on IOB2 tags), per entity type, and token accuracy (the POS metric):
``rnnzoo.metrics.tagging_report``. Data: CoNLL-2003 column files (``rnnzoo.data.conll``).
"""
