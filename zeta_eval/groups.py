"""Config groups: named metric sets and model presets that configs use instead of repeating them.

In a config file (or a ``--model.metrics`` / ``--model.adapter`` override)::

    model:
      adapter: sdxl_base                                   # a model preset
      adapter: {preset: sdxl_base, unet: mhdang/dpo-sdxl-text2image-v1}   # a preset with options changed or added
      metrics: image_set                                   # a metric set
      metrics: [image_set, geneval]                        # sets and metrics together

They expand (:mod:`.config`) before anything is validated, so a run's ``config.yaml`` records the metrics and the
adapter they stand for, and an experiment configured either way is the same experiment (same fingerprint).
"""

from __future__ import annotations

from typing import Any

#: named metric sets: ``metrics: image_set``
METRIC_SETS: dict[str, list[str]] = {
    "image_set": ["hpsv2", "pickscore", "image_reward", "aesthetic", "clip_score"],
    "video_set": ["frame_lpips", "frame_ssim", "chscore_flow", "mtscore_clip"],
}

#: model presets: ``adapter: sdxl_base`` (the adapter's short name and its options)
ADAPTER_PRESETS: dict[str, dict[str, Any]] = {
    "sdxl_base": {"name": "sdxl", "model": "stabilityai/stable-diffusion-xl-base-1.0", "dtype": "float16",
                  "scheduler": "ddim"},
    "sd21": {"name": "sd", "model": "stabilityai/stable-diffusion-2-1", "dtype": "float16", "scheduler": "ddim"},
    "dreamshaper_xl_turbo": {"name": "sdxl", "model": "Lykon/dreamshaper-xl-v2-turbo", "dtype": "float16",
                             "scheduler": "euler"},
    "hunyuan_dit_v12": {"name": "hunyuan_dit", "model": "Tencent-Hunyuan/HunyuanDiT-v1.2-Diffusers",
                        "dtype": "float16"},
    "cogvideox_2b": {"name": "cogvideox", "model": "THUDM/CogVideoX-2b", "dtype": "float16"},
    "modelscope_t2v": {"name": "modelscope", "model": "ali-vilab/text-to-video-ms-1.7b", "dtype": "float16",
                       "scheduler": "ddim"},
}


def expand_metrics(value: Any) -> Any:
    """``metrics`` with every set name replaced by its metrics (a set alone, or sets inside a list)."""
    if isinstance(value, str) and value in METRIC_SETS:
        return list(METRIC_SETS[value])
    if isinstance(value, list):
        out: list[Any] = []
        for item in value:
            out.extend(METRIC_SETS[item] if isinstance(item, str) and item in METRIC_SETS else [item])
        return out
    return value


def expand_adapter(value: Any) -> Any:
    """``adapter`` with a preset (``sdxl_base``, or ``{preset: sdxl_base, ...options}``) replaced by its flat form."""
    if isinstance(value, str) and value in ADAPTER_PRESETS:
        return dict(ADAPTER_PRESETS[value])
    if isinstance(value, dict) and "preset" in value:
        name = value["preset"]
        if name not in ADAPTER_PRESETS:
            raise ValueError(f"unknown adapter preset {name!r}; presets: {', '.join(ADAPTER_PRESETS)}")
        rest = {k: v for k, v in value.items() if k != "preset"}
        if "name" in rest or "class_path" in rest:
            raise ValueError(f"adapter preset {name!r} names its adapter ({ADAPTER_PRESETS[name]['name']}); give "
                             "either preset or name/class_path")
        return {**ADAPTER_PRESETS[name], **rest}
    return value
