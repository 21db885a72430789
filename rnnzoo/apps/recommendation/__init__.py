"""Recommendation (task type ``recommendation``): next-item prediction over interaction sequences.

A user's history (items in time order) is read by a recurrent network (GRU4Rec-style), whose
state after the last interaction scores every item of the catalogue: ``recommend(history, k=10,
exclude_seen=True)`` gives the top-k item ids, their titles where known and their scores, and
``stream()`` updates one user's state per interaction (``step(item)`` returns the new top-k
without re-reading the history). Evaluation ranks the held-out item against all items, the
user's seen items filtered out (HR@10, NDCG@10, MRR@20, Recall@20), as the field now reports it.
``rnnzoo recommend`` on the command line.
"""
