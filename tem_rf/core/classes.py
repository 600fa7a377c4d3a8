"""The class layouts every network, label and metric shares.

The paper's networks (``--target=mask``): 0 background, 1 particle. Boundary-target networks
(``--target=boundary``, `tem_rf.data.instance_masks`): 0 background, 1 particle interior,
2 particle boundary. Either way every class above 0 is particle: the particle probability is
channel 1 of a two-class output and the sum of channels 1.. of a larger one.
"""

CLASS_NAMES = ("background", "particle")
BOUNDARY_CLASS_NAMES = ("background", "particle interior", "particle boundary")
BACKGROUND_CLASS = 0
PARTICLE_CLASS = 1  # label value of particle pixels and channel of the particle class in the output
BOUNDARY_CLASS = 2  # channel of the particle boundary in a boundary-target network


def class_names(num_classes: int) -> tuple[str, ...]:
    """The names of a network's output channels, by their number (2 or 3)."""
    if num_classes == 2:
        return CLASS_NAMES
    if num_classes == 3:
        return BOUNDARY_CLASS_NAMES
    raise ValueError(f"tem_rf networks have 2 or 3 output classes, not {num_classes}")
