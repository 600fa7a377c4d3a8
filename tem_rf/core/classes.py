"""The class layout every network, label and metric shares: 0 background, 1 particle."""

CLASS_NAMES = ("background", "particle")
PARTICLE_CLASS = 1  # label value of particle pixels and channel of the particle class in the output
