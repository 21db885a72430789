"""Image captioning: an image -> a sentence, encode the image once, step per word.

User call (Keras and runtime alike): ``caption(images, beam=, sampler=)``, and
``evaluate(images, references)`` (corpus BLEU-1..4 against every reference of each image,
sacrebleu); CLI verb ``rnnzoo caption NAME photo.jpg [--beam 3] [--attention-plot out.png]``.
Two graphs, decoded by the encode-once + step engine shared with translation
(``rnnzoo.engines.seq2seq``):

* ``encoder`` (``image_encoder.onnx``): ``image`` [B, S, S, 3] float pixels in 0..255 ->
  ``encoder_outputs`` [B, N, C] (the feature grid), optionally ``encoder_keys`` [B, N, K]
  (attention keys, projected once per image) and the decoder's initial states;
* ``decoder`` (``decoder_model.onnx``): ``token``, states, grid tensors -> ``logits``,
  ``new_<state>`` and, with attention, ``attention`` [B, N] over the grid cells.

Images are read and resized by one function (``rnnzoo.data.captions.preprocess_image``, Pillow +
numpy) in training, Keras inference and the runtime; the model scales pixels to [-1, 1] itself.
Evaluation reports BLEU next to two baselines on the same split: the most frequent training
caption, and the caption of the training image nearest in the model's pooled encoder features.
Data: the Flickr8k layout (``captions.txt`` + ``Images/``) or COCO caption JSON. A family
implements ``build_model``, ``encoder_graph()`` and ``decoder_graph()``.
"""
