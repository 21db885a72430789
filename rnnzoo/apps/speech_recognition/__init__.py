"""Speech recognition (task type ``speech-recognition``): audio -> a label string, trained with
CTC. WAV files or numpy signals become normalised log-mel frames; a recognizer maps them to
per-frame log-probabilities over the alphabet plus the blank, decoded by best path or prefix beam
search. Data: the Free Spoken Digit Dataset (digit strings) or a folder of WAV files with
``transcripts.tsv``. User call ``transcribe(audio)``; CLI verb ``rnnzoo transcribe``."""
