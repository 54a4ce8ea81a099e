"""The LightningModule: every configured sampler on every batch of prompts, one Parquet row per sample."""

from __future__ import annotations

import datetime as _dt
import json
import logging
import os
import time
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import torch
from lightning.pytorch import LightningModule

from datamodules.records import PromptRecord
from metrics.base import SampleMetric
from samplers import LinearSolver, Sampler, guidance_columns, sample_measured

from . import twins
from .adapters.base import ModelAdapter
from .identity import experiment_fingerprint, safe_name, sample_id, sampler_key, strict_hash, to_json
from .parts import read_stored_rows
from .versions import code_version, package_versions

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
        for s in self.samplers:
            before = (s.params(), s.steps)
            s.scale_steps(old, new)
            if s.label and (s.params(), s.steps) != before and getattr(s, "match_nfe", None) is None:
                s.label = None  # a hand-written label may name the old values; the derived one names the new
        self._resolve_nfe_matching()
        kept: dict[str, tuple[int, Sampler]] = {}
        for k, s in enumerate(self.samplers):
            key = sampler_key(s, self.steps, self.schedule)
            if key in kept:
                j, first = kept[key]
                log.warning("samplers[%d] (%s) is the same setting at %d steps as samplers[%d] (%s): it runs once",
                            k, s.display_name(), new, j, first.display_name())
                continue
            kept[key] = (k, s)
        self.samplers = [s for _, s in kept.values()]

    def _resolve_nfe_matching(self) -> None:
        """Give every ``match_nfe`` sampler the fewest steps whose NFE reaches its target's NFE."""
        for s in self.samplers:
            target_name = getattr(s, "match_nfe", None)
            if target_name is None:
                continue
            targets = [t for t in self.samplers if t is not s and target_name in (t.name, t.label)]
            if len(targets) != 1:
                found = "no" if not targets else f"{len(targets)}"
                raise ValueError(f"match_nfe={target_name!r} of {s.name} must name exactly one other sampler of the "
                                 f"experiment (by name or label); found {found}")
            goal = targets[0].expected_nfe(targets[0].num_steps(self.steps))
            steps = 1
            while s.expected_nfe(steps) < goal:
                steps += 1
            s.steps = steps

    def _validate(self) -> None:
        self._resolve_nfe_matching()
        seen: dict[str, int] = {}
        for k, s in enumerate(self.samplers):
            s.validate(s.num_steps(self.steps))
            self.adapter.check_sampler(s)
            key = sampler_key(s, self.steps, self.schedule)
            if key in seen:
                raise ValueError(f"samplers[{seen[key]}] and samplers[{k}] are the same setting ({s.display_name()}): "
                                 "they would produce identical samples")
            seen[key] = k
        self.all_samplers()  # twin settings are refused here (e.g. twins of a standard sampler)
        if self.compile_options is not None:
            self._check_compile()
        kind = "video" if self.adapter.is_video else "image"
        for m in self.metric_list:
            if m.media_kind != kind:
                raise ValueError(f"metric {m.name!r} scores {m.media_kind}s but the {self.adapter.family} adapter "
                                 f"produces {kind}s")

    def _check_compile(self) -> None:
        self.adapter.check_compile()
        for s in self.samplers:
            if s.perturbation is not None:  # dynamo does not guard on hooks added after compilation
                raise ValueError(f"model.compile cannot run {s.display_name()}: its perturbed branch hooks the "
                                 "network's attention at each call, which a compiled network would silently skip")

    def twins_of(self, sampler: Sampler) -> list[Sampler]:
        """The CFG twin settings of ``sampler`` (:mod:`zeta_eval.twins`), run right after it on every batch."""
        return list(twins.plan(sampler, self.steps, self.schedule))

    def all_samplers(self) -> list[Sampler]:
        """Every setting whose samples this experiment writes: the samplers, each followed by its CFG twins."""
        return [s for sampler in self.samplers for s in (sampler, *self.twins_of(sampler))]

    def sampler_label(self, sampler: Sampler) -> str:
        return sampler.display_name()

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
        network = self.adapter.denoising_network()
        settings = (self.compile_options["mode"], self.compile_options["backend"])
        return CompileWarmUp(denoiser, _WARM_SIGNATURES.setdefault(network, {}).setdefault(settings, set()),
                             self.adapter.device)

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
                           "category": _category(record.meta), "sampler_index": index, "created_at": created}
                    if self.score_enabled:
                        conventions = {**json.loads(stored.get("metric_conventions") or "{}"),
                                       **{m.name: m.conventions() for m in self.metric_list}}
                        row["metric_conventions"] = to_json(conventions)
                    row.update({name: values[k] for name, values in scores.items()})
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

    def _sample(self, sampler: Sampler, records: list[PromptRecord], cond: Any) -> "_Sampled":
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
        return _Sampled(out, seconds, compile_seconds / len(records) if warm_up is not None else None, peak_mb)

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

    def _rows(self, sampler: Sampler, records: list[PromptRecord], ids: list[str], sampled: "_Sampled",
              decode_seconds: float, finite: torch.Tensor, scores: dict[str, list[Any]], paths: list[str | None],
              strips: list[str | None]) -> list[dict]:
        """One Parquet row per record: the prompt, the sampler and its settings, the costs, the media paths, the
        scores and the sampler's per-step diagnostics."""
        out = sampled.out
        diag = {f"diag_{k}": v.cpu() for k, v in out.diagnostics.items()}
        zigzag = out.zigzag_steps.tolist() if out.zigzag_steps is not None else [None] * len(records)
        params = sampler.params()
        created = _dt.datetime.now(_dt.timezone.utc)
        rows = []
        for k, rec in enumerate(records):
            row = {
                "sample_id": ids[k], "prompt_set": rec.prompt_set, "prompt_id": str(rec.prompt_id),
                "prompt": rec.prompt, "seed": int(rec.seed), "sample_index": int(rec.sample_index),
                "metadata": to_json(rec.meta), "category": _category(rec.meta),
                "sampler": sampler.name, "sampler_label": self.sampler_label(sampler),
                "sampler_key": sampler_key(sampler, self.steps, self.schedule), "sampler_params": to_json(params),
                "steps": sampler.num_steps(self.steps), "schedule": to_json(self.schedule),
                "gamma1": float(sampler.gamma1), "gamma2": None if sampler.gamma2 is None else float(sampler.gamma2),
                # a sample that zigzagged on no step (an adaptive warm-up that never started) is CFG at gamma1
                "gamma_eff": float(sampler.gamma1 if zigzag[k] == 0 else sampler.gamma_eff),
                "zigzag_steps": zigzag[k], "nfe": int(out.nfe),
                "seconds": sampled.seconds, "decode_seconds": decode_seconds, "peak_memory_mb": sampled.peak_mb,
                "compile_seconds": sampled.compile_seconds,
                "media_path": paths[k], "media_strip_path": strips[k], "nonfinite": not bool(finite[k]),
                "status": "ok" if bool(finite[k]) else "nonfinite",
                "created_at": created, **self._static,
            }
            for name, values in scores.items():
                row[name] = values[k]
            row.update(guidance_columns(out.guidance, k), twin_of=None, twin_kind=None)
            for name, values in diag.items():
                row[name] = [float(v) for v in values[k].tolist()]
            rows.append(row)
        return rows

    def _score(self, media: torch.Tensor, prompts: list[str], metas: list[dict],
               finite: torch.Tensor) -> dict[str, list[Any]]:
        columns: dict[str, list[Any]] = {}
        if not self.score_enabled or len(self.metric_list) == 0:
            return columns
        keep = finite.nonzero().flatten().tolist()
        n = len(prompts)
        for metric in self.metric_list:
            if not keep:
                columns.setdefault(metric.name, [None] * n)
                continue
            kept_metas = [metas[k] for k in keep]
            values = metric.score(media[keep], [prompts[k] for k in keep], kept_metas)
            metric.update(values, kept_metas)
            for name, tensor in values.items():
                col = columns.setdefault(name, [None] * n)
                for j, k in enumerate(keep):
                    col[k] = tensor[j].item()
        return columns

    def _save_media(self, media: torch.Tensor, records: list[PromptRecord], ids: list[str],
                    sampler: Sampler) -> tuple[list[str], list[str | None]]:
        """PNG per image; MP4 plus a frame-strip PNG (for report grids) per video. Paths relative to output_dir.

        A file name is the readable prompt id and seed plus the first 8 hex digits of the sample id, so it is unique
        per sample even when ids sanitise alike (``a/b``, ``a_b``) or a prompt was edited; each PNG records its
        sample id and is never replaced by another sample's (the MP4 is checked through its strip).

        The files are written here, or, when ``queue_media`` is set (by the background part writer), handed to the
        writer with the batch's rows (:meth:`take_queued_media`), which writes them before the rows.
        """
        from .media import SampleMedia

        assert self.output_dir is not None, "output_dir must be set to save media"
        folder = Path("media") / sampler_key(sampler, self.steps, self.schedule) / safe_name(records[0].prompt_set)
        paths: list[str] = []
        strips: list[str | None] = []
        files: list[SampleMedia] = []
        fps = int(getattr(self.adapter, "fps", 8))
        for k, rec in enumerate(records):
            stem = (f"{safe_name(rec.prompt_id)}_seed{rec.seed}" + (f"_{rec.sample_index}" if rec.sample_index else "")
                    + f"-{ids[k][:8]}")
            item = torch.nan_to_num(media[k].float().cpu(), nan=0.0).clamp(0, 1)
            rel = folder / f"{stem}.{'mp4' if self.adapter.is_video else 'png'}"
            strip = folder / f"{stem}_strip.png" if self.adapter.is_video else None
            files.append(SampleMedia(item, self.output_dir / rel, owner=ids[k], fps=fps,
                                     strip=None if strip is None else self.output_dir / strip))
            paths.append(rel.as_posix())
            strips.append(None if strip is None else strip.as_posix())
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
        desc = self.model_identity()
        trainer = attached_trainer(self)
        dm = getattr(trainer, "datamodule", None) if trainer is not None else None
        conv = {m.name: m.conventions() for m in self.metric_list} if self.score_enabled else {}
        return {
            "model": self.adapter.model_label, "model_revision": desc.get("model_revision"), "model_key": self.model_key(),
            "model_path": self.adapter.model_path, "family": desc.get("family"), "scheduler": desc.get("scheduler"),
            "dtype": desc.get("dtype"), "model_config": to_json(desc), "metric_conventions": to_json(conv),
            "weights_sha256": to_json({**self.adapter.weight_digests(), **self._scorer_weight_digests()}),
            "rank": int(trainer.global_rank) if trainer is not None else 0,
            "world_size": int(trainer.world_size) if trainer is not None else 1,
            "array_task": int(getattr(dm, "shard_index", 0) or 0),
            "array_tasks": int(getattr(dm, "num_shards", 1) or 1),
            "host": os.uname().nodename, "versions": to_json({**package_versions(), **code_version()}),
        }

    def _scorer_weight_digests(self) -> dict[str, str]:
        """``{"<metric>/<option>[/<file>]": SHA-256}`` for the metrics' weight options that name a local file or
        folder, a file in torchvision's cache, or a hub repository in the local cache (free: its blob names)."""
        import inspect

        from metrics.weights import is_hub_id, torch_hub_checkpoints

        from .adapters.base import weight_file_digests
        from .identity import WEIGHT_SUFFIXES, file_sha256, folder_sha256

        out: dict[str, str] = {}
        for m in self.metric_list if self.score_enabled else []:
            for option in inspect.signature(type(m).__init__).parameters:
                ref = getattr(m, option, None)
                if not isinstance(ref, str) or not ref:
                    continue
                path = Path(ref).expanduser()
                prefix = f"{m.name}/{option}"
                if path.is_file() or (torch_hub_checkpoints() / ref).is_file():
                    out[prefix] = file_sha256(path if path.is_file() else torch_hub_checkpoints() / ref)
                elif path.is_dir():
                    out.update({f"{prefix}/{k}": v for k, v in folder_sha256(path, WEIGHT_SUFFIXES).items()})
                elif is_hub_id(ref):
                    out.update({f"{prefix}/{k}": v for k, v in weight_file_digests(ref).items()})
        return out

    def configure_optimizers(self) -> Any:  # predict-only module
        return None


#: torch.compile's modes
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")


@dataclass
class _Sampled:
    """One sampler's output for a group of records and what it cost per sample."""

    out: Any  # the sampler's SampleOutput (latents, nfe, zigzag steps, diagnostics)
    seconds: float  # sampling, a compile's first calls excluded
    compile_seconds: float | None  # None without model.compile
    peak_mb: float | None  # CUDA only


def attached_trainer(module: LightningModule) -> Any:
    """The trainer running ``module``, or None when it runs alone (tests, notebooks): Lightning's public ``trainer``
    property raises then."""
    try:
        return module.trainer
    except RuntimeError:
        return None


def compile_options(value: Any) -> dict[str, Any] | None:
    """``model.compile`` as :meth:`ModelAdapter.compile_network` options (None: off)."""
    if value is None or value is False:
        return None
    options = {} if value is True else {"mode": value} if isinstance(value, str) else value
    if not isinstance(options, dict) or set(options) - {"mode", "backend", "channels_last"}:
        raise ValueError(f"model.compile must be true, false, a mode ({', '.join(COMPILE_MODES)}) or a mapping with "
                         f"mode, backend and channels_last; got {value!r}")
    options = {"mode": "default", "backend": "inductor", "channels_last": None, **options}
    if options["mode"] not in COMPILE_MODES:
        raise ValueError(f"model.compile mode must be one of {', '.join(COMPILE_MODES)}; got {options['mode']!r}")
    if not isinstance(options["backend"], str) or not options["backend"]:
        raise ValueError(f"model.compile backend must be a torch.compile backend name; got {options['backend']!r}")
    if options["channels_last"] not in (None, True, False):
        raise ValueError(f"model.compile channels_last must be true, false or null (auto); got "
                         f"{options['channels_last']!r}")
    return options


#: per compiled network and (mode, backend): the input signatures it has compiled for in this process. torch.compile
#: keeps what it compiled with the network's code, so a later run on the same network (a benchmark's repeats) does
#: not compile again and needs no warm-up
_WARM_SIGNATURES: "weakref.WeakKeyDictionary[torch.nn.Module, dict[tuple, set]]" = weakref.WeakKeyDictionary()


class CompileWarmUp:
    """A denoiser whose network is compiled: the first call for each input signature (latent shape and dtype,
    branches, integer or real timestep) compiles the network for that shape. That call is made once beforehand,
    its output discarded, and its time summed in ``seconds``, so that the sampler's own call is timed as every other
    (the network is deterministic: both calls return the same values)."""

    def __init__(self, denoiser: Any, signatures: set, device: torch.device):
        self.denoiser, self.signatures, self.device = denoiser, signatures, device
        self.seconds = 0.0

    def __call__(self, x: torch.Tensor, t: float, branches: Sequence[str]) -> tuple[torch.Tensor, ...]:
        signature = (tuple(x.shape), x.dtype, tuple(branches), float(t).is_integer())
        if signature not in self.signatures:
            self._sync()
            start = time.perf_counter()
            self.denoiser(x, t, branches)
            self._sync()
            self.seconds += time.perf_counter() - start
            self.signatures.add(signature)
        return self.denoiser(x, t, branches)

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)


def use_layout_independent_kernels(device: torch.device) -> None:
    """What ``layout_invariant`` needs besides evaluating each sample alone: kernels that reduce in the same order in
    every process, whatever the rank count.

    CPU kernels split reductions over the intra-op threads, and Lightning gives each of R DDP ranks ``cores // R``
    threads when ``OMP_NUM_THREADS`` is unset, so one process and two ranks round differently (1/255 on a pixel now
    and then). The thread count is therefore pinned to ``OMP_NUM_THREADS``, default 1 (use more ranks to use more
    cores). On CUDA, cuBLAS needs a fixed workspace (``CUBLAS_WORKSPACE_CONFIG``, read when its first handle is made)
    and cuDNN its deterministic algorithms without autotuning; ``torch.use_deterministic_algorithms`` covers the rest
    (warn-only: an operation without a deterministic kernel warns instead of stopping a long run).
    """
    requested = os.environ.get("OMP_NUM_THREADS", "")
    torch.set_num_threads(int(requested) if requested.isdigit() and int(requested) > 0 else 1)
    if device.type == "cuda":
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False
    torch.use_deterministic_algorithms(True, warn_only=True)


def stale_score_columns(row: dict[str, Any]) -> list[str]:
    """The score columns of a stored row (its metrics' primary columns and their ``name_*`` / ``name/*`` companions):
    what its metadata may have changed."""
    names = list(json.loads(row.get("metric_conventions") or "{}"))
    return [c for c in row if any(c == n or c.startswith((f"{n}_", f"{n}/")) for n in names)]


def _category(meta: dict[str, Any]) -> str | None:
    for key in ("category", "tag", "main_category", "style", "style_inferred"):
        value = meta.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip()
    return None
