"""The LightningModule: every configured sampler on every batch of prompts, one Parquet row per sample."""

from __future__ import annotations

import datetime as _dt
import json
import logging
import time
from pathlib import Path
from typing import Any, Sequence

import torch
from lightning.pytorch import LightningModule

from datamodules.records import PromptRecord
from metrics.base import SampleMetric
from samplers import LinearSolver, Sampler, sample_measured

from . import twins
from .adapters.base import ModelAdapter
from .baselines import experiment_label
from .identity import experiment_fingerprint, sample_id, sampler_key, strict_hash, to_json
from .media import SampleMedia, media_names
from .parts import read_stored_rows
from .rows import Sampled, category, sample_rows, stale_score_columns, static_columns
from .runtime import CompileWarmUp, attached_trainer, compile_options, compile_warm_up, use_layout_independent_kernels
from .scoring import provenance, score_media, scorer_weight_digests
from .settings import check_run, check_samplers, resolve_nfe_matching, scale_steps

log = logging.getLogger("zeta_eval")


class SamplingEvaluation(LightningModule):
    """Runs the samplers of one experiment and scores their outputs.

    Args:
        adapter: the model family and weights (``class_path`` or a short name: sd, sdxl, hunyuan_dit, cogvideox,
            modelscope, sd3, flux, wan, shapebench).
        samplers: the samplers to compare (short names: standard, zigzag, implicit_zigzag, zeta, cfgpp, seg).
        steps: solver steps (a sampler's own ``steps`` overrides it, e.g. for NFE-matched baselines).
        max_steps: run at most this many steps (the smoke overlay sets 10). When ``steps`` is larger, every
            step-counted sampler setting (a sampler's own ``steps``, ζ's warm-up, window and latest warm-up, the
            zigzag's λ) is scaled by ``max_steps / steps`` with it, so that every zigzag setting still zigzags;
            settings that become identical run once (a warning names them).
        schedule: ``default``, ``leading | trailing | linspace``, ``ays`` or an explicit list of timesteps.
        metrics: scores computed on the generating device (short names: hpsv2, pickscore, image_reward, aesthetic,
            clip_score, geneval, frame_lpips, frame_ssim, chscore_flow, mtscore_clip, shapebench).
        score: False defers scoring to ``python -m zeta_eval score OUT_DIR`` (e.g. on a 24 GB card).
        save_media: write PNG / MP4 files under ``OUT_DIR/media``.
        compile: ``torch.compile`` the denoising network (the adapter's UNet or transformer): ``false`` (default),
            ``true`` (mode ``default``, backend ``inductor``), a mode (``default``, ``reduce-overhead``,
            ``max-autotune``, ``max-autotune-no-cudagraphs``) or ``{mode, backend, channels_last}`` (``channels_last``
            null: on for 2D UNets on CUDA). The network compiles at its first call for each input shape; that call is
            made once more, untimed, before the timed one, and its seconds go to the ``compile_seconds`` column instead
            of ``seconds``. Results equal the eager network's within floating-point tolerance, so compile is not part
            of the model identity (a run may resume with or without it). Refused with SEG (its hook on the network's
            attention is invisible to a compiled graph) and with ``offload: model``.
        frontier: the CFG frontier, ``{gammas: [1, 1.5, 2, 3, ...]}`` or ``{gammas: auto}``: standard CFG at each
            of these guidance scales, added after the configured samplers (a scale a configured standard setting
            runs already is not added twice); the report reads every other setting against this curve (see
            :mod:`zeta_eval.frontier`).
        layout_invariant: evaluate each sample on its own (text encoder, network, decoder, scorers) with
            layout-independent kernels (:func:`use_layout_independent_kernels`), so that media and scores are
            bit-identical whatever the batch size, rank count or array layout, on the same hardware and software.
            Batched kernels round differently for different batch shapes (differences around 1e-6), and CPU kernels
            for different thread counts. On CPU each process then runs ``OMP_NUM_THREADS`` (default 1) intra-op
            threads: use ranks (``--trainer.devices``) to use more cores. On GPU cuBLAS and cuDNN run their
            deterministic algorithms; bit-identity holds between runs on the same GPU model and library versions
            (not verified on a GPU in this repository's CI). Default off.
        output_dir: set by the command line (``--output_dir``, default ``outputs/<config stem>``).
    """

    def __init__(self, adapter: ModelAdapter, samplers: list[Sampler], steps: int = 50,
                 schedule: str | list[int] = "default", metrics: list[SampleMetric] | None = None,
                 score: bool = True, save_media: bool = True, layout_invariant: bool = False,
                 max_steps: int | None = None, output_dir: str | None = None,
                 compile: bool | str | dict[str, Any] = False, frontier: dict[str, Any] | None = None):
        super().__init__()
        for name, value in (("steps", steps), ("max_steps", 1 if max_steps is None else max_steps)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"model.{name} must be a positive integer, got {value!r}")
        if not samplers:
            raise ValueError("model.samplers is empty: configure at least one sampler")
        self.adapter = adapter
        self.samplers = list(samplers)
        self.steps = steps
        self.schedule = schedule
        self.frontier = None if frontier is None else self._add_frontier(frontier)
        #: the configured steps when max_steps scaled the experiment down (None: not scaled)
        self.scaled_from: int | None = None
        if max_steps is not None and steps > max_steps:
            self._scale_steps(max_steps)
        self.metric_list = torch.nn.ModuleList(metrics or [])
        self.score_enabled = bool(score)
        self.save_media = bool(save_media)
        self.layout_invariant = bool(layout_invariant)
        self.output_dir = Path(output_dir) if output_dir else None
        self.compile_options = compile_options(compile)
        self._validate()
        self._solvers: dict[int, LinearSolver] = {}
        #: stored samples whose media are in place: sample_id -> the metadata (JSON) they were scored with
        self._done: dict[str, str | None] = {}
        self._stored: Any = None  # the stored rows (a pyarrow table) and their index by sample_id
        self._stored_index: dict[str, int] = {}
        self._static: dict[str, Any] = {}
        self._scorer_digests: dict[str, str] = {}
        self._loaded_identity: dict[str, Any] | None = None
        self._model_key: str | None = None
        self._warned_truncation = False
        #: set by the background part writer: media files go to it with the rows instead of being written inline
        self.queue_media = False
        self._queued_media: list[Any] = []

    # ------------------------------------------------------------------ configuration checks
    def _add_frontier(self, spec: Any) -> list[float]:
        """Append a standard setting per frontier scale that no configured setting runs already; the scales."""
        from samplers import build_sampler

        from .frontier import frontier_gammas, frontier_label

        scales = [v for s in self.samplers for v in (s.gamma1, s.gamma_eff)]
        gammas = frontier_gammas(spec, scales)
        keys = {sampler_key(s, self.steps, self.schedule) for s in self.samplers}
        for gamma in gammas:
            point = build_sampler("standard", gamma1=gamma, label=frontier_label(gamma))
            if sampler_key(point, self.steps, self.schedule) not in keys:
                self.samplers.append(point)
        return gammas

    def _scale_steps(self, new: int) -> None:
        """Run ``new`` steps instead of ``self.steps``, every sampler's step-counted settings scaled with them."""
        old, self.scaled_from, self.steps = self.steps, self.steps, new
        self.samplers = scale_steps(self.samplers, old, new, self.schedule)

    def _validate(self) -> None:
        self._nfe_targets = resolve_nfe_matching(self.samplers, self.steps)
        check_samplers(self.samplers, self.adapter, self.steps, self.schedule)
        self.all_samplers()  # twin settings are refused here (e.g. twins of a standard sampler)
        self._check_labels()
        check_run(self.samplers, self.adapter, list(self.metric_list), compile=self.compile_options is not None)

    def _check_labels(self) -> None:
        """No two settings of one label: reports, ``plan`` and the twins (whose rows name their source by label)
        tell settings apart by it."""
        seen: dict[str, int] = {}
        for k, s in enumerate(self.samplers):
            label = self.sampler_label(s)
            if label in seen:
                raise ValueError(f"samplers[{seen[label]}] and samplers[{k}] have the same label {label!r} "
                                 f"({self.samplers[seen[label]].display_name()} and {s.display_name()}): reports, "
                                 "plan and CFG twins tell settings apart by label; give one of them another label")
            seen[label] = k

    def twins_of(self, sampler: Sampler) -> list[Sampler]:
        """The CFG twin settings of ``sampler`` (:mod:`zeta_eval.twins`), run right after it on every batch."""
        return list(twins.plan(sampler, self.steps, self.schedule))

    def all_samplers(self) -> list[Sampler]:
        """Every setting whose samples this experiment writes: the samplers, each followed by its CFG twins."""
        return [s for sampler in self.samplers for s in (sampler, *self.twins_of(sampler))]

    def sampler_label(self, sampler: Sampler) -> str:
        """The sampler's label, or one generated from its settings and what makes it a fair baseline
        (:func:`.baselines.experiment_label`)."""
        return experiment_label(sampler, self.samplers, self._nfe_targets.get(sampler))

    def expected_nfe(self, sampler: Sampler) -> int:
        return sampler.expected_nfe(sampler.num_steps(self.steps))

    # ------------------------------------------------------------------ identities
    def model_identity(self) -> dict[str, Any]:
        ident = dict(self.adapter.describe())
        ident.pop("device", None)
        return ident

    def model_key(self) -> str:
        """A short hash of the model identity as configured (before loading), fixed on first use: experiment.json
        and every row carry it, so a report can tell this experiment's rows from another model's."""
        if self._model_key is None:
            self._model_key = strict_hash(self.model_identity(), 12)
        return self._model_key

    def sample_id(self, record: PromptRecord, sampler: Sampler) -> str:
        identity = self._loaded_identity or self.model_identity()  # fixed once the weights are loaded
        return sample_id(record, identity, sampler, self.steps, self.schedule)

    def record_done(self, record: PromptRecord) -> bool:
        """Every sampler's output for this record is already written, its media are in place and it was scored with
        the record's metadata as it is now (used by the datamodule to skip it)."""
        meta = to_json(record.meta)
        return all(self._done.get(self.sample_id(record, s), meta + "?") == meta for s in self.all_samplers())

    def needs_rescoring_only(self, record: PromptRecord) -> bool:
        """Every sampler's output for this record is stored with its media, but some were scored with other
        metadata (an edited GenEval include, tag or category): they are scored again from their media files, not
        generated again. Without media to read (``save_media: false``) they are generated again."""
        meta = to_json(record.meta)
        ids = [self.sample_id(record, s) for s in self.all_samplers()]
        if not all(i in self._done for i in ids) or all(self._done[i] == meta for i in ids):
            return False
        if not (self.score_enabled and len(self.metric_list)):
            return True  # only the metadata columns change
        return all(self._stored_row(i).get("media_path") or self._stored_row(i).get("status", "ok") != "ok"
                   for i in ids if self._done[i] != meta)

    def fingerprint(self, data_identity: dict[str, Any]) -> str:
        return experiment_fingerprint(data_identity, self.model_identity(), self.samplers, self.steps, self.schedule)

    # ------------------------------------------------------------------ Lightning hooks
    def setup(self, stage: str) -> None:
        trainer = attached_trainer(self)
        device = trainer.strategy.root_device if trainer is not None else torch.device("cpu")
        if self.layout_invariant:
            use_layout_independent_kernels(device)
        if not self.adapter.loaded:
            self.model_key()  # the identity as configured, as experiment.json records it
            self.adapter.load(device)
        self._loaded_identity = self.model_identity()
        if self.compile_options is not None:
            self._compile_network()
        for s in self.samplers:  # solver-dependent checks before the first sample is drawn
            s.check_solver(self.solver_for(s))
        if self.score_enabled:
            for m in self.metric_list:
                m.load(device)
        if self.output_dir is not None:
            self._read_stored(trainer)
        dm = getattr(trainer, "datamodule", None) if trainer is not None else None
        if dm is not None and hasattr(dm, "skip"):
            dm.skip = self.record_done if self._done else None
        self._scorer_digests = scorer_weight_digests(list(self.metric_list)) if self.score_enabled else {}
        self._static = self._static_columns()

    def _read_stored(self, trainer: Any) -> None:
        """The rows already written to ``output_dir`` and which of them are done: those whose media files are in
        place and their own. The others are generated again, with one warning line; a file that belongs to another
        sample is moved to ``foreign_media/`` first, out of the way of the row's own file."""
        from .media import (MEDIA_FOREIGN, MEDIA_OK, check_rows_media, describe_media_problems, move_foreign,
                            warn_about_media)

        table = read_stored_rows(self.output_dir)
        self._stored, self._stored_index, self._done = table, {}, {}
        if table.num_rows == 0:
            return
        columns = [c for c in ("sample_id", "metadata", "media_path", "media_strip_path") if c in table.column_names]
        rows = table.select(columns).to_pylist()
        checks = check_rows_media(self.output_dir, rows)
        problems = describe_media_problems(checks)
        if problems is not None:
            for row, check in zip(rows, checks):
                if check == MEDIA_FOREIGN:
                    move_foreign(self.output_dir, row)
            if trainer is None or trainer.is_global_zero:
                bad = sum(1 for c in checks if c not in (None, MEDIA_OK))
                warn_about_media("%s: %d stored samples have media %s; they are generated again (files of other "
                                 "samples moved to %s)", self.output_dir, bad, problems,
                                 self.output_dir / "foreign_media")
        for k, (row, check) in enumerate(zip(rows, checks)):
            if check in (None, MEDIA_OK):
                self._stored_index[row["sample_id"]] = k
                self._done[row["sample_id"]] = row.get("metadata")

    def _stored_row(self, sample_id: str) -> dict[str, Any]:
        return self._stored.slice(self._stored_index[sample_id], 1).to_pylist()[0]

    def _compile_network(self) -> None:
        used = self.adapter.compile_network(**self.compile_options)
        log.info("model.compile: the %s network compiles at its first call for each input shape (mode %s, backend %s,"
                 " channels_last %s); those calls are timed apart, in the compile_seconds column", self.adapter.family,
                 used["mode"], used["backend"], str(used["channels_last"]).lower())

    def _compile_warm_up(self, denoiser: Any) -> "CompileWarmUp | None":
        """The denoiser behind its compile warm-up (None without ``compile``)."""
        if self.compile_options is None:
            return None
        return compile_warm_up(denoiser, self.adapter.denoising_network(), self.compile_options, self.adapter.device)

    def transfer_batch_to_device(self, batch: Any, device: torch.device, dataloader_idx: int) -> Any:
        return batch  # records hold no tensors; the adapter places its own tensors

    def solver_for(self, sampler: Sampler) -> LinearSolver:
        n = sampler.num_steps(self.steps)
        if n not in self._solvers:
            self._solvers[n] = self.adapter.solver(n, self.schedule)
        return self._solvers[n]

    def predict_step(self, batch: Sequence[PromptRecord], batch_idx: int = 0, dataloader_idx: int = 0) -> list[dict]:
        records = list(batch)
        self._queued_media = []  # media of a batch that was abandoned (a stop) belong to no rows
        rescore = [self.needs_rescoring_only(r) for r in records]
        rows: list[dict] = self._rescore([r for r, again in zip(records, rescore) if again])
        records = [r for r, again in zip(records, rescore) if not again]
        for group in ([[r] for r in records] if self.layout_invariant else [records] if records else []):
            prompts = [r.prompt for r in group]
            metas = [dict(r.meta) for r in group]
            truncated = self._prompt_truncation(group)
            cond = self.adapter.encode(prompts)  # shared by every sampler of the group
            for index, sampler in enumerate(self.samplers):
                if self._written(sampler, group):
                    continue  # a resumed run that grew (a frontier, twins): only what is missing runs
                source_rows = self._run_sampler(sampler, group, prompts, metas, cond)
                source_rows += twins.run_twins(  # right after their source, from the same noise
                    self.twins_of(sampler), source_rows, self.steps,
                    lambda twin: self._run_sampler(twin, group, prompts, metas, cond))
                for row, cut in zip(source_rows, truncated * (len(source_rows) // len(group))):
                    row["sampler_index"] = index
                    row["prompt_truncated"] = cut
                    rows.append(row)
        return rows

    def _written(self, sampler: Sampler, records: list[PromptRecord]) -> bool:
        """Every sample of ``sampler`` and of its twins for ``records`` is written as :meth:`record_done` asks of a
        whole record (media in place, scored with the record's metadata as it is now). A twin that is missing runs
        its source again (from the same noise: the same output), whose measured guidance it copies."""
        metas = [to_json(r.meta) for r in records]
        return bool(self._done) and all(self._done.get(self.sample_id(r, s), meta + "?") == meta
                                        for s in (sampler, *self.twins_of(sampler)) for r, meta in zip(records, metas))

    def _rescore(self, records: list[PromptRecord]) -> list[dict]:
        """New rows for the stored samples of ``records`` that were scored with other metadata: the stored row with
        the record's metadata and category, scored again from its media file (:meth:`needs_rescoring_only`)."""
        from .media import read_media

        rows: list[dict] = []
        meta_of = {id(r): to_json(r.meta) for r in records}
        settings = [(index, s) for index, source in enumerate(self.samplers) for s in (source, *self.twins_of(source))]
        for index, sampler in settings:  # a twin's rows carry its source's index, as when generated
            stale = [(r, self._stored_row(i)) for r in records
                     for i in [self.sample_id(r, sampler)] if self._done[i] != meta_of[id(r)]]
            for group in ([[p] for p in stale] if self.layout_invariant else [stale] if stale else []):
                scored = [k for k, (_, row) in enumerate(group) if row.get("status", "ok") == "ok"]
                scores: dict[str, list[Any]] = {}
                if scored and self.score_enabled and len(self.metric_list):
                    media = torch.stack([read_media(self.output_dir / group[k][1]["media_path"]) for k in scored])
                    found = self._score(media, [group[k][0].prompt for k in scored],
                                        [dict(group[k][0].meta) for k in scored], torch.ones(len(scored), dtype=torch.bool))
                    scores = {name: [None] * len(group) for name in found}
                    for name, values in found.items():
                        for j, k in enumerate(scored):
                            scores[name][k] = values[j]
                created = _dt.datetime.now(_dt.timezone.utc)
                for k, (record, stored) in enumerate(group):
                    row = {**stored, **dict.fromkeys(stale_score_columns(stored)), "metadata": meta_of[id(record)],
                           "category": category(record.meta), "sampler_index": index, "created_at": created}
                    if self.score_enabled:
                        conventions = {**json.loads(stored.get("metric_conventions") or "{}"),
                                       **{m.name: m.conventions() for m in self.metric_list}}
                        row["metric_conventions"] = to_json(conventions)
                    row.update({name: values[k] for name, values in scores.items()})
                    if scores and k in scored:  # scored again here: the scoring's provenance is this run's
                        row.update(provenance(self._scorer_digests, created))
                    rows.append(row)
        return rows

    def _prompt_truncation(self, records: list[PromptRecord]) -> list[bool]:
        """Which prompts the text encoder cuts (as the model's own pipeline does); warned about once per run."""
        try:
            truncated = self.adapter.prompt_truncated([r.prompt for r in records])
        except ValueError as err:  # a family that refuses over-long prompts instead of cutting them
            raise ValueError(f"{records[0].prompt_set}: {err}") from err
        if any(truncated) and not self._warned_truncation:
            first = next(r for r, cut in zip(records, truncated) if cut)
            log.warning("prompt %s of %s (and perhaps others) is longer than the %s text encoder reads: it is truncated "
                        "as the model's pipeline truncates it, and its rows say prompt_truncated=true",
                        first.prompt_id, first.prompt_set, self.adapter.family)
            self._warned_truncation = True
        return truncated

    def _run_sampler(self, sampler: Sampler, records: list[PromptRecord], prompts: list[str],
                     metas: list[dict], cond: Any) -> list[dict]:
        """One sampler over one group of records: sample, decode, score, save the media, make the rows."""
        sampled = self._sample(sampler, records, cond)
        media, decode_seconds = self._decode(sampled.out.latents, len(records))
        finite = self._finite(sampler, sampled.out.latents, media)
        scores = self._score(media, prompts, metas, finite)
        ids = [self.sample_id(r, sampler) for r in records]
        paths, strips = (self._save_media(media, records, ids, sampler) if self.save_media
                         else ([None] * len(records),) * 2)
        return self._rows(sampler, records, ids, sampled, decode_seconds, finite, scores, paths, strips)

    def _sample(self, sampler: Sampler, records: list[PromptRecord], cond: Any) -> Sampled:
        """Draw the latents of ``records`` and run ``sampler``; the time per sample (a compile's first calls
        excluded) and, on CUDA, the peak memory."""
        solver = self.solver_for(sampler)
        cuda = self.adapter.device.type == "cuda"
        x = self.adapter.initial_latents([r.seed for r in records], solver)
        denoiser = self.adapter.denoiser(cond, sampler.perturbation)
        warm_up = self._compile_warm_up(denoiser)
        if cuda:
            torch.cuda.synchronize(self.adapter.device)
            torch.cuda.reset_peak_memory_stats(self.adapter.device)
        start = time.perf_counter()
        with torch.inference_mode():
            out = sample_measured(sampler, warm_up or denoiser, x, solver)
        if cuda:
            torch.cuda.synchronize(self.adapter.device)
        compile_seconds = warm_up.seconds if warm_up is not None else 0.0
        seconds = (time.perf_counter() - start - compile_seconds) / len(records)
        peak_mb = torch.cuda.max_memory_allocated(self.adapter.device) / 2**20 if cuda else None
        return Sampled(out, seconds, compile_seconds / len(records) if warm_up is not None else None, peak_mb)

    def _decode(self, latents: torch.Tensor, count: int) -> tuple[torch.Tensor, float]:
        """The media of ``latents`` and the decode time per sample."""
        start = time.perf_counter()
        with torch.inference_mode():
            media = self.adapter.decode(latents)
        return media, (time.perf_counter() - start) / count

    @staticmethod
    def _finite(sampler: Sampler, latents: torch.Tensor, media: torch.Tensor) -> torch.Tensor:
        """Which samples have finite latents and media (the others are flagged and not scored), on the CPU."""
        finite = torch.isfinite(latents.flatten(1)).all(1).cpu() & torch.isfinite(media.flatten(1)).all(1).cpu()
        if not bool(finite.all()):
            log.warning("%s: %d of %d samples have non-finite latents or media; they are flagged and not scored",
                        sampler.display_name(), int((~finite).sum()), len(finite))
        return finite

    def _rows(self, sampler: Sampler, records: list[PromptRecord], ids: list[str], sampled: Sampled,
              decode_seconds: float, finite: torch.Tensor, scores: dict[str, list[Any]], paths: list[str | None],
              strips: list[str | None]) -> list[dict]:
        return sample_rows(sampler, records, ids, sampled, decode_seconds, finite, scores, paths, strips,
                           label=self.sampler_label(sampler), key=sampler_key(sampler, self.steps, self.schedule),
                           steps=sampler.num_steps(self.steps), schedule=self.schedule, static=self._static,
                           scorer_digests=self._scorer_digests)

    def _score(self, media: torch.Tensor, prompts: list[str], metas: list[dict],
               finite: torch.Tensor) -> dict[str, list[Any]]:
        """The score columns of a batch (:func:`.scoring.score_media`); non-finite samples are not scored."""
        if not self.score_enabled or len(self.metric_list) == 0:
            return {}
        return score_media(list(self.metric_list), media, prompts, metas, finite.nonzero().flatten().tolist())

    def _save_media(self, media: torch.Tensor, records: list[PromptRecord], ids: list[str],
                    sampler: Sampler) -> tuple[list[str], list[str | None]]:
        """PNG per image; MP4 plus a frame-strip PNG (for report grids) per video. Paths relative to output_dir.

        A file name is the readable prompt id and seed plus the first 8 hex digits of the sample id, so it is unique
        per sample even when ids sanitise alike (``a/b``, ``a_b``) or a prompt was edited; each PNG records its
        sample id and is never replaced by another sample's (the MP4 is checked through its strip).

        The files are written here, or, when ``queue_media`` is set (by the background part writer), handed to the
        writer with the batch's rows (:meth:`take_queued_media`), which writes them before the rows.
        """
        assert self.output_dir is not None, "output_dir must be set to save media"
        names = media_names(sampler_key(sampler, self.steps, self.schedule), records, ids, self.adapter.is_video)
        files: list[SampleMedia] = []
        fps = int(getattr(self.adapter, "fps", 8))
        for k, (rel, strip) in enumerate(names):
            item = torch.nan_to_num(media[k].float().cpu(), nan=0.0).clamp(0, 1)
            files.append(SampleMedia(item, self.output_dir / rel, owner=ids[k], fps=fps,
                                     strip=None if strip is None else self.output_dir / strip))
        paths: list[str] = [rel for rel, _ in names]
        strips: list[str | None] = [strip for _, strip in names]
        if self.queue_media:
            self._queued_media.extend(files)
        else:
            for file in files:
                file.write()
        return paths, strips

    def take_queued_media(self) -> list[Any]:
        """The media files of the last batch, not yet written (``queue_media``); the caller writes them."""
        files, self._queued_media = self._queued_media, []
        return files

    def finish_metrics(self, rows: list[dict[str, Any]] | None = None) -> dict[str, float]:
        """Metric means over every rank (a collective: call it on every rank, after ``trainer.predict``).

        ``rows``: the stored rows to summarise instead of what this process scored (a resumed task scores only what
        was missing; its summary must cover every sample of the task). Give them on one rank and ``[]`` on the
        others: the sums are added over ranks.

        Not a Lightning epoch hook: Lightning skips those on a rank that received no items, and the other ranks
        would then wait for it forever.
        """
        import warnings

        summary: dict[str, float] = {}
        if self.score_enabled:
            for m in self.metric_list:
                if rows is not None:
                    m.reset()
                    scored = [r for r in rows if r.get(m.name) is not None]
                    if scored:
                        m.update(torch.tensor([float(r[m.name]) for r in scored], dtype=torch.float64),
                                 [json.loads(r.get("metadata") or "{}") for r in scored])
                with warnings.catch_warnings():  # a resumed rank may have nothing new: still part of the collective
                    warnings.filterwarnings("ignore", message=".*was called before the ``update`` method.*")
                    values = m.compute()
                summary.update({k: float(v) for k, v in values.items() if v == v})  # drop NaN (no samples)
                m.reset()
        return summary

    # ------------------------------------------------------------------ rows
    def _static_columns(self) -> dict[str, Any]:
        trainer = attached_trainer(self)
        return static_columns(self.adapter, self.model_identity(), self.model_key(),
                              list(self.metric_list) if self.score_enabled else [], self._scorer_digests, trainer)

    def configure_optimizers(self) -> Any:  # predict-only module
        return None
