"""Translation: source sentences -> target sentences, encode once, step per token.

User call (Keras and runtime alike): ``translate(texts, beam=, sampler=)``, and
``evaluate(sources, references)`` (corpus BLEU and chrF, sacrebleu); CLI verb
``rnnzoo translate``. Two graphs: ``encoder`` (``source`` -> ``encoder_outputs``, optional
``encoder_keys``, decoder initial states) and ``decoder`` (``token``, states, encoder tensors ->
``logits``, ``new_<state>``, optional ``attention``), both driven by the samplers of
``rnnzoo.engines`` through the encode-once + step engine it shares with image captioning
(``rnnzoo.engines.seq2seq``). Data: Anki/Tatoeba pair files (``spa.txt``), split grouped by
sentence. A family implements ``build_model`` plus ``encoder_graph()`` and ``decoder_graph()``.
"""
