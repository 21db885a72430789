"""Preset directories of rnnzoo's video-prediction application.

Data only: rnnzoo locates this folder through the ``rnnzoo.presets`` entry point without
importing it, and verifies every file's sha256 before loading anything.
"""
