"""Stub networks for tests that need a network's behaviour in pixels without training one."""

import numpy as np
from scipy import ndimage

from tem_rf.serve.signatures import SIGNATURE_OUTPUT
from tem_rf.serve.predictor import Predictor

TRAINING_NM = 0.5  # the demo's low-resolution pixel size


def blur_predictor(sigma_px=3.0, pixel_size_nm=TRAINING_NM):
    """A stub network with a receptive field in pixels, like a real one: particles are where the
    standardised image, blurred over ``sigma_px`` of the network's grid, is dark."""

    def function(images):
        images = np.asarray(images)[..., 0]
        blurred = np.stack([ndimage.gaussian_filter(image, sigma_px) for image in images])
        return {SIGNATURE_OUTPUT: (1.0 / (1.0 + np.exp(8.0 * blurred))).astype(np.float32)}

    metadata = {"size_divisor": 4, "halo_px": 12, "pixel_size_nm": pixel_size_nm, "architecture": "stub"}
    return Predictor(function, metadata, "stub")
