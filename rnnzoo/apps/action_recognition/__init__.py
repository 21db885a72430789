"""Action recognition (task type ``action-recognition``): an action label for a 3-D skeleton
sequence.

A sequence of skeletons (20 joints, x y z per frame, as the Kinect tracker of MSR Action3D
gives them) is normalised to the body (joints relative to the hip centre, divided by the torso
length), read by a bidirectional recurrent network and pooled over its frames:
``classify(sequences)`` gives each sequence's action and every action's probability, and
``evaluate(sequences, labels)`` the accuracy, macro-F1 and confusion matrix. Validation holds
out whole subjects. ``rnnzoo classify`` on the command line.
"""
