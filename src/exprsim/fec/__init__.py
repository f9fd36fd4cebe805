"""Rebuild and use the FEC dataset (FECNet, CVPR 2019): fetch, crop, train, evaluate.

* :mod:`exprsim.fec.fetch` — ``fetch_fec``: concurrent, resumable image download with a
  SQLite manifest (the one place in exprsim that downloads, and only when the user runs
  ``exprsim fec fetch``);
* :mod:`exprsim.fec.crops` — ``build_crops``: crop each face by its box, detect + align it,
  store aligned crops in memory-mappable shards (:class:`~exprsim.fec.crops.CropStore`);
* :mod:`exprsim.fec.dataset` — strong-agreement triplets over the crops and the 30/30/30
  balanced batch sampler;
* :mod:`exprsim.training.fec` — ``FECTrainConfig`` / ``train_fec`` (the paper's recipe; recipe ``fec``);
* :mod:`exprsim.fec.evaluate` — ``evaluate_fec`` (triplet accuracy by type + human baseline).

The CSV reader lives in :mod:`exprsim.data.fec`. Nothing is imported here (cheap import).
"""
