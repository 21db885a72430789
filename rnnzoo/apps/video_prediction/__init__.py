"""Video prediction (task type ``video-prediction``): the next frames of a frame sequence.

A ConvLSTM (Shi et al. 2015; frames cut into patches as in PredRNN) reads the given frames and
predicts the following ones, each prediction fed back as the next input:
``model.predict_frames(frames, steps=10)``; ``stream()`` feeds one frame at a time. Data: frame
arrays (.npy/.npz, ``[N, T, H, W(, C)]`` or mnist_test_seq's ``[T, N, H, W]``), folders of PNG
frames, or Moving MNIST generated from the MNIST training digits (Srivastava et al.'s protocol).
Evaluation reports MSE and MAE per frame and SSIM as the Moving MNIST tables compute them, with
the all-black and copy-last baselines. ``rnnzoo predict-frames`` writes an input | truth |
prediction strip.
"""
