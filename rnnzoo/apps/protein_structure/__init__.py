"""Protein secondary structure: a DSSP state per residue (Q8, and Q3 from it), from the
amino-acid sequence alone.

User call (Keras and runtime alike): ``predict_structure(sequences) -> [Structure(sequence,
q8, q3, q8_probs, q3_probs)]`` (also under its CLI verb's name, ``structure``), and
``evaluate(sequences, q8_strings)``; CLI verb ``rnnzoo structure SEQUENCE|FILE.fasta``. One
exported graph: post-padded int32 ``residues`` [batch, time] -> Q8 ``logits`` [batch, time, 8].

Scores: Q8 and Q3 accuracy over residues (Q3 truth by the reduction H, G, I -> H; E, B -> E;
L, S, T -> C), per-class recall/precision/F1, macro-F1. Data: the CB6133 CSV
(``id,len,input,expected``) with its split TSV, or FASTA with a DSSP string file.
"""
