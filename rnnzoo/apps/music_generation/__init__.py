"""Music generation (task type ``music-generation``): polyphonic piano rolls, frame by frame.

A model predicts each 88-key frame from the frames before it, so it both scores music (frame
NLL, the published metric on the Boulanger-Lewandowski sets such as JSB Chorales) and writes it:
``generate(steps, primer=, temperature=, seed=)`` samples a piano roll after an optional primer,
the same roll for a seed on Keras and on the onnxruntime bundle. ``rnnzoo generate`` writes MIDI,
and optionally a piano-roll image and audio (the verb it shares with text generation).
"""
