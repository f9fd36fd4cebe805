"""The configuration of a FER+ vote training run (:class:`TrainConfig`, saved as
``train_config.json`` beside every checkpoint) and its result (:class:`TrainResult`)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from exprsim.config import config_hash
from exprsim.data.augment import AugmentConfig
from exprsim.models.embedder import (
    PreprocessConfig,
)

#: Most validation triplet draws a run (``val_triplet_draws``) or an ensemble (``draws``)
#: scores on: 10**8 ran for hours after the training, at its first validation
MAX_VALIDATION_DRAWS = 1000

#: Most faces in one training step (``batch_size``, or ``per_class`` x 8 classes): a step
#: of ``exprnet_v`` at 48 px on 4,096 faces peaked at 8.9 GB of memory; ``per_class``
#: 100,000 (a batch of 800,000) was killed for want of memory without a word
MAX_BATCH = 4096


@dataclass(frozen=True)
class TrainConfig:
    """Everything that defines a training run (saved as ``train_config.json``).

    Attributes:
        model: registry name; ``model_kwargs`` go to its builder.
        data: ``"ferplus"`` (../shared/data/fer2013) or ``"synthetic"`` (tests).
        val_fraction: share of Training held out (by ``seed``) for monitoring and choices;
            PublicTest is never used for any choice.
        epochs, batch_size, lr, weight_decay, momentum: ``optimizer`` ``"sgd"`` (Nesterov,
            ``momentum``) or ``"adamw"`` (decoupled ``weight_decay``), with a cosine
            schedule after ``warmup_epochs`` linear warm-up.
        kl_weight, triplet_weight, pair_weight: loss mix.
        distribution_loss: the per-face term weighted by ``kl_weight``: ``"kl"``
            (KL(votes || p)) or ``"hellinger"`` (``sum_c (sqrt(v_c) - sqrt(p_c))^2``, the
            geometry of the hybrid readout's ``sqrt(p)`` block; about half the KL near the
            votes).
        prob_pair_weight: weight of a pair term on ``sqrt(p)`` (the hybrid readout's graded
            block): the in-batch mean of ``(|sqrt(p_i) - sqrt(p_j)|^2 - 2 H^2(v_i, v_j))^2``,
            squared distances on both sides (``2 H^2`` is the squared distance between the
            votes' square roots). 0.25 gives it the scale of the reference's pair term on
            ``e``. 0 = off.
        triplet_threshold: minimum Hellinger gap between the closest and the second-closest
            pair for an in-batch vote triplet to count as clear.
        val_triplets, val_triplet_draws: the validation vote triplets (per-epoch metrics and
            the readout choice): ``val_triplet_draws`` draws (seeds 0, 1, ...) of
            ``val_triplets`` each (0: as many as validation faces, at most 3,000), pooled.
            One draw of 1,408 moves a paired comparison of two models by sd ~0.011 on FER+
            (scripts/val_noise.py); 10 draws of 3,000 are steadier. Defaults keep the
            original single draw.
        val_drop_twins: when > 0, validation faces with a near-twin among the training faces
            (cosine similarity of mean-centred pixels >= this, :mod:`exprsim.data.twins`;
            0.95 drops ~10% of FER+ validation) are left out of validation. 0 = off.
        triplets_per_type: triplets of each type per batch (FECNet: 30).
        margins: two-hinge margins for one-, two-, three-class triplets.
        augment: augment training crops; ``augment_mode`` ``"full"`` = ``augmentation``
            (:mod:`exprsim.data.augment`: flip, affine, contrast/brightness, blur, erasing) on
            the raw grey levels before the shared input normalisation; ``"flip"`` =
            horizontal flip only.
        min_votes: keep only training faces with at least this many of the 10 votes on the
            8 emotions (the validation faces are kept whole, so that the apps' held-out faces
            stay unseen).
        pair_squared, pair_scale: the pair term compares (squared, if set) embedding distances
            with ``pair_scale`` x vote Hellinger distances (squared with it). Squared with
            scale 2 and weight 1/16 is the reference recipe's ``(|e_i - e_j|^2/4 - H^2)^2``.
        decay_weights_only: weight decay on conv / linear weights only (not on biases,
            BatchNorm or classifier prototypes).
        readout_angles: for a model with a hybrid readout (``exprnet_v``), the angles tried
            after training; the one with the best validation triplet accuracy + kNN11
            accuracy is saved in the exported config.
        max_train: use only the first N training faces (tiny runs).
        objective: ``"fec"`` (the kl / triplet / pair mix above) or ``"sgm"`` (SGM loss only;
            the kl / triplet / pair weights are then unused).
        sgm_sigma, sgm_norm_weight: SGM Gaussian width (paper 0.5) and weight of its
            mean-norm term (paper 1).
        sgm_target: SGM true posterior: ``"votes"`` (FER+ vote distribution) or
            ``"majority"`` (one-hot majority label); class labels given to :func:`train`
            always act one-hot.
        sgm_embedding: space the SGM loss sees: ``"normalized"`` (the L2-normalised output the
            library ships; the norm term is then the constant 1) or ``"raw"`` (the
            pre-normalisation output, as the paper's unnormalised embedding; needs a model
            with a ``bn`` layer feeding the normalisation, as ``exprnet_s``).
        sampler: ``"random"`` (shuffled epochs of ``batch_size``) or ``"balanced"``
            (``per_class`` faces of every class per batch; ``len(train) // batch_size``
            batches per epoch, with ``batch_size`` = ``per_class`` x classes).
        lr_schedule: ``"cosine"`` (after warm-up) or ``"constant"`` (``lr`` throughout).
        optimizer ``"adam"``: plain Adam (``weight_decay`` as L2 in the gradient).
        init_from: folder with ``model.safetensors`` (or ``last.safetensors``) to start from.
        split_seed: seed of the validation hold-out (default: ``seed``); runs that differ
            only in ``seed`` then share their validation faces.
        mixup_alpha, mixup_p: mixup (Zhang et al., 2018) of the network inputs *and* their
            vote distributions: a ``mixup_p`` share of each batch's faces is replaced by
            ``l * x_i + (1 - l) * x_j`` with votes ``l * v_i + (1 - l) * v_j``, ``l`` drawn
            from Beta(``mixup_alpha``, ``mixup_alpha``) per face and ``j`` a random face of
            the batch; every loss term then sees the mixed faces. 0 = off.
        teacher, teacher_weight: distillation: ``teacher`` names a file of
            :func:`make_teacher_targets` (teachers' mean emotion distribution for every face
            this config loads); the training target becomes ``(1 - teacher_weight) * votes
            + teacher_weight * teachers`` in every loss term. Validation keeps the votes.
        teacher_pair_weight, teacher_pair_angle: relational distillation: an in-batch term
            ``mean_{i<j} (|z_i - z_j|^2 - D_ij)^2``, ``z = [cos(a) sqrt(p), sin(a) e]`` the
            student's hybrid vector at ``a = teacher_pair_angle`` degrees and ``D_ij`` the
            teachers' mean squared distance between their own shipped vectors of faces i and
            j (the ``vecs`` of the ``teacher`` file): the geometry of the teachers'
            concatenated vectors, which an ensemble has and its mean distribution does not.
            Needs a ``teacher`` file made with vectors; 0 = off.
        class_balance: re-weighting of the per-face term (``kl_weight``'s) towards rare
            emotions: class ``c`` weighs ``m_c ** -class_balance``, ``m_c`` the total vote mass
            of ``c`` over the training faces, and a face weighs ``sum_c v_c w_c`` (its votes,
            or its blended target, times the class weights), scaled so that the training faces
            weigh 1 on average. 0 = off (every face 1); 1 = inverse frequency. Other terms
            are unchanged. Meant for a last stage (deferred re-weighting, Cao et al. 2019).
        device: ``"cpu"``, ``"cuda"`` (or ``"cuda:N"``) or ``"auto"``; where the steps run.
        fer2013_vote: the original FER2013 label of each training face counted as this many
            more votes in its per-face target (``kl_weight``'s term; the pair term keeps the
            FER+ votes, and validation faces are untouched); 0 = off.
        fer2013_vote_classes: only FER2013 labels of these FER+ classes vote (e.g.
            ``["disgust"]``); empty = all seven.
            Not part of the recipe: a resumed run may change it, and checkpoints are saved
            on the CPU either way.
        swa_epochs: stochastic weight averaging (Izmailov et al., 2018): the weights at the
            end of each of the last ``swa_epochs`` epochs are averaged, BatchNorm statistics
            are then recomputed over one augmented pass of the training faces, and the
            average is what gets validated and exported (``last.safetensors`` keeps the last
            iterate). 0 = off.
        size_schedule: progressive resizing of the training batches: ``(first_epoch, side)``
            pairs, first epochs increasing; from ``first_epoch`` on, every augmented batch
            is resized (bilinear, antialiased) to ``side`` x ``side`` before normalisation,
            until the next pair; epochs before the first pair, validation, the BatchNorm
            pass and export use the model's own input size. A fully convolutional trunk
            with global pooling reads any side in [16, 256]; a cheaper low-resolution phase buys
            epochs in a fixed budget, and a last phase at full size (the weight average's
            epochs included) ends the run where inference works. Empty = off.
    """

    __hash__ = config_hash  # equal configs hash alike (dict fields)

    model: str = "exprnet_s"
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    embedding_dim: int = 16
    preprocess: PreprocessConfig = field(default_factory=PreprocessConfig)
    data: str = "ferplus"
    data_dir: str | None = None
    val_fraction: float = 0.05
    epochs: int = 20
    batch_size: int = 128
    optimizer: str = "sgd"
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 5e-4
    warmup_epochs: float = 1.0
    kl_weight: float = 1.0
    distribution_loss: str = "kl"
    prob_pair_weight: float = 0.0
    triplet_weight: float = 1.0
    pair_weight: float = 1.0
    triplet_threshold: float = 0.2
    val_triplets: int = 0
    val_triplet_draws: int = 1
    val_drop_twins: float = 0.0
    triplets_per_type: int = 30
    margins: tuple[float, float, float] = (0.1, 0.2, 0.2)
    classifier_scale: float = 16.0
    augment: bool = True
    augment_mode: str = "full"
    augmentation: AugmentConfig = field(default_factory=AugmentConfig)
    min_votes: int = 0
    pair_squared: bool = False
    pair_scale: float = math.sqrt(2.0)
    decay_weights_only: bool = False
    readout_angles: tuple[float, ...] = ()
    max_train: int | None = None
    seed: int = 0
    num_threads: int = 0
    version: str = "1"
    objective: str = "fec"
    sgm_sigma: float = 0.5
    sgm_norm_weight: float = 1.0
    sgm_target: str = "votes"
    sgm_embedding: str = "normalized"
    sampler: str = "random"
    per_class: int = 30
    lr_schedule: str = "cosine"
    init_from: str | None = None
    swa_epochs: int = 0
    split_seed: int | None = None
    mixup_alpha: float = 0.0
    mixup_p: float = 1.0
    teacher: str | None = None
    teacher_weight: float = 0.5
    teacher_pair_weight: float = 0.0
    teacher_pair_angle: float = 15.0
    size_schedule: tuple[tuple[int, int], ...] = ()
    class_balance: float = 0.0
    device: str = "cpu"
    fer2013_vote: float = 0.0
    fer2013_vote_classes: tuple[str, ...] = ()


@dataclass(frozen=True)
class TrainResult:
    out_dir: Path
    epochs_run: int
    seconds: float
    final_metrics: dict[str, float]
