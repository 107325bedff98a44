"""handlib: the companion library of the book on 3D hand pose estimation from depth images."""
__version__ = "0.1.0"
