"""tem_rf: residual UNet segmentation of nanoparticles in TEM micrographs.

The package answers how a residual UNet's receptive field and complexity decide segmentation
quality (Sytwu, Groschner, Scott). Submodules are imported lazily by their users so that
`import tem_rf` stays cheap (no TensorFlow import).
"""

__version__ = "0.2.0"
