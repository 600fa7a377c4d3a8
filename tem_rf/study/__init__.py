"""The receptive-field study: sweeps, scoring, the Fourier baseline, FN maps, ERF, figures, demo.

Import the modules themselves (`tem_rf.study.sweep`, `tem_rf.study.fourier`, ...): each is one
step of the paper's analysis.
"""
