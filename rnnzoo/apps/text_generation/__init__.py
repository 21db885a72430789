"""Text generation (task type ``text-generation``): character-level language models.

A model predicts character t+1 from characters <= t, so it both scores text (bits per
character, the published metric on PTB-char) and writes it: ``generate(prompt, steps,
temperature=, top_k=, top_p=, seed=)`` continues a prompt character by character, the same
output for a seed on Keras and on the onnxruntime bundle. ``rnnzoo generate`` on the command
line (the verb it shares with music generation).
"""
