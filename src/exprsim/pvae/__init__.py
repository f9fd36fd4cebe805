"""Perceptual VAE (Mikheeva, Ek & Kjellström, "Perceptual Facial Expression Representation").

A generative model of face-mesh landmarks with a 30-d latent code, in three variants:

* ``vae``: a standard VAE of normalised landmarks;
* ``m1``: encoder and decoder also take the person's neutral face (the model learns the
  change from that neutral face, not the identity);
* ``m2``: M1 plus a topological triplet prior that pulls perceptually similar faces together
  in the latent space.

Modules: :mod:`~exprsim.pvae.features` (landmark normalisation, FER extraction cache),
:mod:`~exprsim.pvae.model` (the networks and their small registry),
:mod:`~exprsim.training.pvae` (training), :mod:`~exprsim.pvae.data` (landmark data), :mod:`~exprsim.pvae.evaluate` (Table II of the paper
on FER+), :mod:`~exprsim.pvae.codes` (loading a trained model, codes for the video pipeline).
Losses live in :mod:`exprsim.losses.pvae`. Nothing here is imported by ``import exprsim``.
"""
