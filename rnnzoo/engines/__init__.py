"""Decoding engines shared by the generative applications, TF-free (numpy and onnxruntime).

``base`` holds the step/state contract, ``GenerationResult`` and the ``Sampler`` base;
``sampling`` the token samplers and the lookup by name; ``beam`` beam search; ``decoding``
``generate`` and ``graph_step`` (one step function over a Keras or onnxruntime graph runner);
``primed`` the primed-continuation loop of the language models (characters, piano rolls);
``seq2seq`` encode-once-then-step decoding of the attention decoders (translation, captioning);
``ctc`` CTC decoding; ``stream`` the ``Stream`` object of stateful streaming inference
(``model.stream()``). The Keras task and the deployed runtime of an application both decode
through these modules, so their outputs can be compared token by token.
"""
