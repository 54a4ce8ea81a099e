"""Tiny random-weight diffusers pipelines of every model family, built offline from configs.

Each ``build_<family>(folder)`` constructs the pipeline from small configs (seeded, so the weights are the same on
every run), saves it with ``save_pretrained`` to ``folder`` and returns the folder, which the adapters then load
through their ordinary ``from_pretrained`` path. Tokenizers are written here from a small vocabulary (no hub, no
sentencepiece training):

  - CLIP: byte-level BPE over the 256 byte symbols (each with and without the ``</w>`` end-of-word marker), no merges;
  - BERT: WordPiece over lowercase letters, digits and a few words;
  - T5 / mT5: Unigram over "▁" plus single characters.

Sizes are chosen for speed on one CPU core: latents of 8x8 (images) or a few frames of 4x4 / 8x8 (videos).
"""

from __future__ import annotations

import os
import string
from pathlib import Path

import torch

# the tests never reach the hub
os.environ.setdefault("HF_HUB_OFFLINE", "1")

# every builder seeds torch before creating weights, so a folder is the same on every run
SEED = 0

WORDS = ["a", "the", "of", "on", "in", "and", "with", "cat", "dog", "red", "blue", "photo", "painting", "car",
         "tree", "house", "sky", "cup", "table"]


# ---------------------------------------------------------------------------------------------- tokenizers
def _bytes_to_unicode() -> list[str]:
    """The 256 printable stand-ins that byte-level BPE uses for raw bytes (the GPT-2 / CLIP convention)."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + \
        list(range(ord("®"), ord("ÿ") + 1))
    table, extra = {}, 0
    for b in range(256):
        if b in printable:
            table[b] = chr(b)
        else:
            table[b] = chr(256 + extra)
            extra += 1
    return [table[b] for b in range(256)]


def clip_tokenizer(model_max_length: int = 77):
    from transformers import CLIPTokenizer

    symbols = _bytes_to_unicode()
    vocab: dict[str, int] = {}
    for s in symbols:
        vocab[s] = len(vocab)
    for s in symbols:
        vocab[s + "</w>"] = len(vocab)
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    return CLIPTokenizer(vocab=vocab, merges=[], model_max_length=model_max_length)


def bert_tokenizer(model_max_length: int = 77):
    from transformers import BertTokenizer

    tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tokens += list(string.ascii_lowercase + string.digits + string.punctuation)
    tokens += ["##" + c for c in string.ascii_lowercase + string.digits]
    tokens += WORDS
    vocab = {t: i for i, t in enumerate(dict.fromkeys(tokens))}
    return BertTokenizer(vocab=vocab, model_max_length=model_max_length)


def t5_tokenizer(model_max_length: int = 512):
    from transformers import T5Tokenizer

    pieces = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("▁", -2.0)]
    pieces += [("▁" + w, -3.0) for w in WORDS]
    pieces += [(c, -5.0) for c in string.ascii_lowercase + string.ascii_uppercase + string.digits + string.punctuation]
    return T5Tokenizer(vocab=pieces, extra_ids=0, model_max_length=model_max_length)


# ---------------------------------------------------------------------------------------------- text encoders
def _clip_text(tokenizer, with_projection: bool = False, hidden: int = 16, projection_dim: int = 16):
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    cfg = CLIPTextConfig(vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=2 * hidden,
                         num_hidden_layers=2, num_attention_heads=2, max_position_embeddings=tokenizer.model_max_length,
                         projection_dim=projection_dim, hidden_act="gelu",
                         bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id)
    return (CLIPTextModelWithProjection if with_projection else CLIPTextModel)(cfg).eval()


def _t5_encoder(tokenizer, d_model: int = 32):
    from transformers import T5Config, T5EncoderModel

    cfg = T5Config(vocab_size=len(tokenizer), d_model=d_model, d_kv=8, d_ff=2 * d_model, num_layers=1, num_heads=2,
                   relative_attention_num_buckets=8, dropout_rate=0.0, pad_token_id=tokenizer.pad_token_id,
                   eos_token_id=tokenizer.eos_token_id, decoder_start_token_id=tokenizer.pad_token_id)
    return T5EncoderModel(cfg).eval()


def _vae(scaling_factor: float = 0.18215, force_upcast: bool = True, levels: int = 2):
    """A 2-D KL VAE that scales by 2 ** (levels - 1) (2x by default: 8x8 latents decode to 16x16 images)."""
    from diffusers import AutoencoderKL

    return AutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=4,
        down_block_types=("DownEncoderBlock2D",) * levels, up_block_types=("UpDecoderBlock2D",) * levels,
        block_out_channels=(8, 16, 16, 16)[:levels], layers_per_block=1, norm_num_groups=4,
        sample_size=8 * 2 ** (levels - 1), scaling_factor=scaling_factor, force_upcast=force_upcast,
    ).eval()


def _save(pipe, folder: str | os.PathLike) -> str:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    pipe.save_pretrained(folder, safe_serialization=True)
    return str(folder)


# ---------------------------------------------------------------------------------------------- families
def build_sd(folder) -> str:
    """SD 2.x-like: v-prediction DDIM (leading spacing, steps_offset 1), one CLIP encoder, 16x16 images."""
    from diffusers import DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel

    torch.manual_seed(SEED)
    tok = clip_tokenizer()
    unet = UNet2DConditionModel(
        sample_size=8, in_channels=4, out_channels=4, layers_per_block=1, block_out_channels=(8, 16),
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=16, attention_head_dim=(2, 4), norm_num_groups=4, use_linear_projection=True,
    ).eval()
    sched = DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False,
                          set_alpha_to_one=False, steps_offset=1, prediction_type="v_prediction",
                          timestep_spacing="leading")
    pipe = StableDiffusionPipeline(vae=_vae(), text_encoder=_clip_text(tok), tokenizer=tok, unet=unet,
                                   scheduler=sched, safety_checker=None, feature_extractor=None,
                                   requires_safety_checker=False)
    return _save(pipe, folder)


def sdxl_unet(cross_attention_dim: int = 32, projection_dim: int = 16):
    from diffusers import UNet2DConditionModel

    return UNet2DConditionModel(
        sample_size=8, in_channels=4, out_channels=4, layers_per_block=1, block_out_channels=(8, 16),
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        attention_head_dim=(2, 4), use_linear_projection=True, norm_num_groups=4,
        addition_embed_type="text_time", addition_time_embed_dim=8, transformer_layers_per_block=(1, 2),
        projection_class_embeddings_input_dim=6 * 8 + projection_dim, cross_attention_dim=cross_attention_dim,
    ).eval()


def build_sdxl(folder) -> str:
    """SDXL-like: two CLIP encoders (the second with projection -> pooled), text_time conditioning, Euler."""
    from diffusers import EulerDiscreteScheduler, StableDiffusionXLPipeline

    torch.manual_seed(SEED)
    tok, tok2 = clip_tokenizer(), clip_tokenizer()
    te = _clip_text(tok, hidden=16)
    te2 = _clip_text(tok2, with_projection=True, hidden=16, projection_dim=16)
    sched = EulerDiscreteScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                                   steps_offset=1, timestep_spacing="leading", prediction_type="epsilon",
                                   interpolation_type="linear", use_karras_sigmas=False)
    pipe = StableDiffusionXLPipeline(vae=_vae(scaling_factor=0.13025, force_upcast=True), text_encoder=te,
                                     text_encoder_2=te2, tokenizer=tok, tokenizer_2=tok2, unet=sdxl_unet(),
                                     scheduler=sched, force_zeros_for_empty_prompt=True, add_watermarker=False)
    return _save(pipe, folder)


def build_sdxl_unet(folder, seed: int = 1) -> str:
    """A second SDXL UNet (different weights) saved under ``folder/unet``, like a Diffusion-DPO UNet repo."""
    torch.manual_seed(seed)
    unet = sdxl_unet()
    path = Path(folder) / "unet"
    unet.save_pretrained(path, safe_serialization=True)
    return str(folder)


def build_vae(folder, seed: int = 2, force_upcast: bool = False) -> str:
    """A stand-alone VAE (top-level folder), like madebyollin/sdxl-vae-fp16-fix."""
    torch.manual_seed(seed)
    vae = _vae(scaling_factor=0.13025, force_upcast=force_upcast)
    vae.save_pretrained(folder, safe_serialization=True)
    return str(folder)


def build_hunyuan_dit(folder) -> str:
    """Hunyuan-DiT-like: BERT (77 tokens) + T5 (256 tokens) encoders with masks, learned-sigma DiT with 2-D rotary
    embeddings, DDPM scheduler."""
    from diffusers import DDPMScheduler, HunyuanDiT2DModel, HunyuanDiTPipeline
    from transformers import BertConfig, BertModel

    torch.manual_seed(SEED)
    tok = bert_tokenizer()
    bert = BertModel(BertConfig(vocab_size=len(tok), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                                intermediate_size=32, max_position_embeddings=80, pad_token_id=tok.pad_token_id),
                     ).eval()
    tok2 = t5_tokenizer()
    t5 = _t5_encoder(tok2, d_model=32)
    transformer = HunyuanDiT2DModel(
        sample_size=8, patch_size=2, in_channels=4, num_layers=2, num_attention_heads=2, attention_head_dim=8,
        hidden_size=16, mlp_ratio=2.0, learn_sigma=True, cross_attention_dim=16, cross_attention_dim_t5=32,
        pooled_projection_dim=16, text_len=77, text_len_t5=256, use_style_cond_and_image_meta_size=True,
    ).eval()
    sched = DDPMScheduler(beta_start=0.00085, beta_end=0.018, beta_schedule="scaled_linear", clip_sample=False,
                          prediction_type="v_prediction", steps_offset=1, timestep_spacing="leading",
                          variance_type="fixed_small")
    # an 8x VAE as the real model's: the pipeline lays its rotary grid out for 8x latents (8x8 latents, 64x64 images)
    pipe = HunyuanDiTPipeline(vae=_vae(scaling_factor=0.13025, levels=4), text_encoder=bert, tokenizer=tok,
                              transformer=transformer, scheduler=sched, safety_checker=None, feature_extractor=None,
                              requires_safety_checker=False, text_encoder_2=t5, tokenizer_2=tok2)
    return _save(pipe, folder)


def build_cogvideox(folder) -> str:
    """CogVideoX-like: T5 (16 tokens), 3-D VAE (8x spatial, 4x temporal), v-prediction CogVideoXDDIMScheduler."""
    from diffusers import AutoencoderKLCogVideoX, CogVideoXDDIMScheduler, CogVideoXPipeline, CogVideoXTransformer3DModel

    torch.manual_seed(SEED)
    tok = t5_tokenizer()
    t5 = _t5_encoder(tok, d_model=32)
    vae = AutoencoderKLCogVideoX(
        in_channels=3, out_channels=3,
        down_block_types=("CogVideoXDownBlock3D",) * 4, up_block_types=("CogVideoXUpBlock3D",) * 4,
        block_out_channels=(8, 8, 8, 8), latent_channels=4, layers_per_block=1, norm_num_groups=2,
        temporal_compression_ratio=4,
    ).eval()
    transformer = CogVideoXTransformer3DModel(
        num_attention_heads=2, attention_head_dim=8, in_channels=4, out_channels=4, time_embed_dim=4,
        text_embed_dim=32, num_layers=1, sample_width=4, sample_height=4, sample_frames=9, patch_size=2,
        temporal_compression_ratio=4, max_text_seq_length=16,
    ).eval()
    sched = CogVideoXDDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                                   clip_sample=False, set_alpha_to_one=True, steps_offset=0,
                                   prediction_type="v_prediction", rescale_betas_zero_snr=True, snr_shift_scale=3.0,
                                   timestep_spacing="trailing")
    pipe = CogVideoXPipeline(tokenizer=tok, text_encoder=t5, vae=vae, transformer=transformer, scheduler=sched)
    return _save(pipe, folder)


def build_modelscope(folder) -> str:
    """ModelScope-like: CLIP encoder, UNet3D (spatial + temporal attention), frame-wise 2-D VAE, DDIM epsilon."""
    from diffusers import DDIMScheduler, TextToVideoSDPipeline, UNet3DConditionModel

    torch.manual_seed(SEED)
    tok = clip_tokenizer()
    unet = UNet3DConditionModel(
        sample_size=8, in_channels=4, out_channels=4, layers_per_block=1, block_out_channels=(8, 16),
        down_block_types=("CrossAttnDownBlock3D", "DownBlock3D"), up_block_types=("UpBlock3D", "CrossAttnUpBlock3D"),
        cross_attention_dim=16, attention_head_dim=4, norm_num_groups=4,
    ).eval()
    sched = DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False,
                          set_alpha_to_one=False, steps_offset=1, prediction_type="epsilon",
                          timestep_spacing="leading")
    pipe = TextToVideoSDPipeline(vae=_vae(), text_encoder=_clip_text(tok), tokenizer=tok, unet=unet, scheduler=sched)
    return _save(pipe, folder)


def _flow_vae(latent_channels: int = 4, shift_factor: float = 0.0609, scaling_factor: float = 1.5035):
    """The 2-D KL VAE of the flow-matching image models (SD3, FLUX): a shift and a scale, 2x spatial (16x16 images
    from 8x8 latents), no forced upcast."""
    from diffusers import AutoencoderKL

    return AutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=latent_channels,
        down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2,
        block_out_channels=(8, 16), layers_per_block=1, norm_num_groups=4, sample_size=16,
        scaling_factor=scaling_factor, shift_factor=shift_factor, force_upcast=False, use_quant_conv=False,
        use_post_quant_conv=False,
    ).eval()


def build_sd3(folder) -> str:
    """SD 3.5-like: MMDiT with dual-attention layers and QK RMS-norm, CLIP-L + OpenCLIP-bigG (both with projection,
    pooled 2 x 16) + T5 (32 tokens), FlowMatchEulerDiscreteScheduler with shift 3.0, 16x16 images."""
    from diffusers import FlowMatchEulerDiscreteScheduler, SD3Transformer2DModel, StableDiffusion3Pipeline

    torch.manual_seed(SEED)
    tok, tok2, tok3 = clip_tokenizer(), clip_tokenizer(), t5_tokenizer()
    te = _clip_text(tok, with_projection=True, hidden=16, projection_dim=16)
    te2 = _clip_text(tok2, with_projection=True, hidden=16, projection_dim=16)
    t5 = _t5_encoder(tok3, d_model=32)
    transformer = SD3Transformer2DModel(
        sample_size=8, patch_size=2, in_channels=4, out_channels=4, num_layers=2, attention_head_dim=8,
        num_attention_heads=2, joint_attention_dim=32, caption_projection_dim=16, pooled_projection_dim=32,
        pos_embed_max_size=16, dual_attention_layers=(0,), qk_norm="rms_norm",
    ).eval()
    sched = FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=3.0)
    pipe = StableDiffusion3Pipeline(transformer=transformer, scheduler=sched, vae=_flow_vae(), text_encoder=te,
                                    tokenizer=tok, text_encoder_2=te2, tokenizer_2=tok2, text_encoder_3=t5,
                                    tokenizer_3=tok3)
    return _save(pipe, folder)


def _flux(folder, guidance_embeds: bool, dynamic: bool) -> str:
    from diffusers import FlowMatchEulerDiscreteScheduler, FluxPipeline, FluxTransformer2DModel

    torch.manual_seed(SEED)
    tok, tok2 = clip_tokenizer(), t5_tokenizer()
    te = _clip_text(tok, hidden=16)
    t5 = _t5_encoder(tok2, d_model=32)
    transformer = FluxTransformer2DModel(
        patch_size=1, in_channels=16, num_layers=1, num_single_layers=1, attention_head_dim=8, num_attention_heads=2,
        joint_attention_dim=32, pooled_projection_dim=16, guidance_embeds=guidance_embeds, axes_dims_rope=(2, 2, 4),
    ).eval()
    if dynamic:  # FLUX.1-dev's scheduler: the shift follows the image's token count
        sched = FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=3.0, use_dynamic_shifting=True,
                                                base_shift=0.5, max_shift=1.15, base_image_seq_len=256,
                                                max_image_seq_len=4096)
    else:  # FLUX.1-schnell's: no shift
        sched = FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=1.0, use_dynamic_shifting=False)
    # 4 latent channels packed 2x2 into the transformer's 16; a 2x VAE as above, so the pipeline's "vae scale x 2"
    # grid is 4 pixels: 16x16 images, 8x8 latents, 4x4 = 16 image tokens
    pipe = FluxPipeline(scheduler=sched, vae=_flow_vae(4, shift_factor=0.1159, scaling_factor=0.3611),
                        text_encoder=te, tokenizer=tok, text_encoder_2=t5, tokenizer_2=tok2, transformer=transformer)
    return _save(pipe, folder)


def build_flux_dev(folder) -> str:
    """FLUX.1-dev-like: guidance-distilled (guidance embedding), dynamic shifting, CLIP pooled + T5 tokens."""
    return _flux(folder, guidance_embeds=True, dynamic=True)


def build_flux_schnell(folder) -> str:
    """FLUX.1-schnell-like: no guidance embedding, no shift."""
    return _flux(folder, guidance_embeds=False, dynamic=False)


def build_wan(folder) -> str:
    """Wan 2.1 T2V-like: UMT5 encoder (16 tokens), 3-D causal VAE (8x spatial, 4x temporal), WanTransformer3DModel,
    and the shipped UniPC flow scheduler (flow_shift 3.0), which the adapter converts to flow-matching Euler."""
    from diffusers import AutoencoderKLWan, UniPCMultistepScheduler, WanPipeline, WanTransformer3DModel
    from transformers import UMT5Config, UMT5EncoderModel

    torch.manual_seed(SEED)
    tok = t5_tokenizer()
    umt5 = UMT5EncoderModel(UMT5Config(vocab_size=len(tok), d_model=32, d_kv=8, d_ff=64, num_layers=1, num_heads=2,
                                       relative_attention_num_buckets=8, dropout_rate=0.0,
                                       pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id,
                                       decoder_start_token_id=tok.pad_token_id)).eval()
    vae = AutoencoderKLWan(base_dim=8, z_dim=4, dim_mult=[1, 1, 1, 1], num_res_blocks=1,
                           temperal_downsample=[False, True, True], latents_mean=[0.1, -0.2, 0.3, 0.0],
                           latents_std=[1.5, 0.8, 2.0, 1.0]).eval()
    transformer = WanTransformer3DModel(
        patch_size=(1, 2, 2), num_attention_heads=2, attention_head_dim=8, in_channels=4, out_channels=4, text_dim=32,
        freq_dim=16, ffn_dim=32, num_layers=2, cross_attn_norm=True, qk_norm="rms_norm_across_heads",
        rope_max_seq_len=32,
    ).eval()
    sched = UniPCMultistepScheduler(prediction_type="flow_prediction", use_flow_sigmas=True, num_train_timesteps=1000,
                                    flow_shift=3.0)
    pipe = WanPipeline(tokenizer=tok, text_encoder=umt5, vae=vae, transformer=transformer, scheduler=sched)
    return _save(pipe, folder)


BUILDERS = {
    "sd": build_sd,
    "sdxl": build_sdxl,
    "hunyuan_dit": build_hunyuan_dit,
    "cogvideox": build_cogvideox,
    "modelscope": build_modelscope,
    "sd3": build_sd3,
    "flux": build_flux_dev,
    "flux_schnell": build_flux_schnell,
    "wan": build_wan,
}


# ---------------------------------------------------------------------------------------------- test helpers
PIPELINE_CLASSES = {
    "sd": "StableDiffusionPipeline",
    "sdxl": "StableDiffusionXLPipeline",
    "hunyuan_dit": "HunyuanDiTPipeline",
    "cogvideox": "CogVideoXPipeline",
    "modelscope": "TextToVideoSDPipeline",
    "sd3": "StableDiffusion3Pipeline",
    "flux": "FluxPipeline",
    "flux_schnell": "FluxPipeline",
    "wan": "WanPipeline",
}
#: adapter options the tiny models need (small frame counts; everything in float32 on CPU)
ADAPTER_OPTIONS = {
    "sd": {},
    "sdxl": {},
    "hunyuan_dit": {},
    "cogvideox": {},
    "modelscope": {"num_frames": 4},
    "sd3": {"max_sequence_length": 32},
    # the FLUX pipeline's default size is 128 latent pixels x its VAE factor: 256 for the 2x tiny VAE
    "flux": {"max_sequence_length": 32, "height": 16, "width": 16},
    "flux_schnell": {"max_sequence_length": 32, "height": 16, "width": 16},
    "wan": {"num_frames": 5, "height": 32, "width": 32, "max_sequence_length": 16},
}
#: extra pipeline __call__ kwargs that make the pipeline do what the adapter does for the tiny models
PIPELINE_CALL_OPTIONS = {
    "sd": {},
    "sdxl": {},
    "hunyuan_dit": {"use_resolution_binning": False},
    "cogvideox": {"max_sequence_length": 16},
    "modelscope": {"num_frames": 4},
    "sd3": {"max_sequence_length": 32},
    # true CFG: the negative prompt makes the pipeline evaluate two branches (guidance_scale is the distilled value)
    "flux": {"max_sequence_length": 32, "negative_prompt": "", "height": 16, "width": 16},
    "flux_schnell": {"max_sequence_length": 32, "negative_prompt": "", "height": 16, "width": 16},
    "wan": {"num_frames": 5, "height": 32, "width": 32, "max_sequence_length": 16},
}
#: the adapter family of each tiny model (FLUX.1-schnell is the flux family)
FAMILY_OF = {"flux_schnell": "flux"}


class TinyZoo:
    """Builds each tiny pipeline once into ``root`` and caches loaded adapters by (family, options)."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        self._folders: dict[str, str] = {}
        self._adapters: dict[tuple, object] = {}

    def folder(self, family: str) -> str:
        if family not in self._folders:
            self._folders[family] = BUILDERS[family](self.root / family)
        return self._folders[family]

    def extra_folder(self, name: str, builder) -> str:
        if name not in self._folders:
            self._folders[name] = builder(self.root / name)
        return self._folders[name]

    def adapter(self, family: str, **options):
        from zeta_eval.adapters import build_adapter

        opts = {"dtype": "float32", **ADAPTER_OPTIONS[family], **options}
        key = (family, tuple(sorted((k, repr(v)) for k, v in opts.items())))
        if key not in self._adapters:
            adapter = build_adapter(FAMILY_OF.get(family, family), model=self.folder(family), **opts)
            adapter.load("cpu")
            self._adapters[key] = adapter
        return self._adapters[key]

    def pipeline(self, family: str):
        import diffusers

        return getattr(diffusers, PIPELINE_CLASSES[family]).from_pretrained(self.folder(family))


def run_adapter(adapter, sampler, prompts, seeds, steps: int):
    """(final latents, decoded media, sampler output) of one batch, the way the evaluation pipeline runs it."""
    solver = adapter.solver(steps)
    cond = adapter.encode(list(prompts))
    x = adapter.initial_latents(list(seeds), solver)
    out = sampler.sample(adapter.denoiser(cond, sampler.perturbation), x, solver)
    return out.latents, adapter.decode(out.latents), out


def _generators(seed):
    if isinstance(seed, (list, tuple)):
        return [torch.Generator("cpu").manual_seed(s) for s in seed]
    return torch.Generator("cpu").manual_seed(seed)


def run_pipeline(zoo: TinyZoo, family: str, adapter, prompt, seed, steps: int, guidance: float,
                 output_type: str = "pt", **call_options):
    """The diffusers pipeline's own ``__call__`` with the adapter's scheduler, for one prompt and seed (or a list of
    prompts and one seed each: one generator per sample, as the adapter draws)."""
    pipe = zoo.pipeline(family)
    pipe.scheduler = type(adapter.scheduler).from_config(adapter.scheduler.config)
    pipe.set_progress_bar_config(disable=True)
    kwargs = {**PIPELINE_CALL_OPTIONS[family], **call_options}
    if PIPELINE_CLASSES[family] == "FluxPipeline":
        # FLUX runs true CFG at `guidance`; its guidance_scale is the distilled-guidance input the adapter feeds
        kwargs = {"true_cfg_scale": guidance, **kwargs}
        guidance = adapter.guidance_value if adapter.guidance_value is not None else 0.0
    out = pipe(prompt, num_inference_steps=steps, guidance_scale=guidance,
               generator=_generators(seed), output_type=output_type, **kwargs)
    return out.images if hasattr(out, "images") else out.frames
