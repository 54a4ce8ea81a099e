"""Layout independence on real (tiny, random-weight) diffusers networks: layout_invariant makes a sample's media and
scores bit-identical whatever batch it is evaluated in."""

import pytest
import torch

from datamodules.records import PromptRecord
from samplers import Standard, Zeta, Zigzag
from tiny_models import TinyZoo
from toy_metric import Brightness
from zeta_eval.module import SamplingEvaluation

PROMPTS = ["a red cube on a table", "two dogs", "a painting of the sea"]


@pytest.fixture(scope="module")
def zoo(tmp_path_factory):
    return TinyZoo(tmp_path_factory.mktemp("zoo"))


def run(adapter, records, batch_size: int, layout_invariant: bool) -> dict[str, float]:
    module = SamplingEvaluation(adapter=adapter, samplers=[Standard(), Zigzag(), Zeta(warmup_steps=1)], steps=4,
                                metrics=[Brightness()], save_media=False, layout_invariant=layout_invariant)
    module.setup("predict")
    rows = []
    for k in range(0, len(records), batch_size):
        rows += module.predict_step(records[k:k + batch_size])
    return {r["sample_id"]: r["brightness"] for r in rows}


@pytest.mark.parametrize("family", ["sdxl", "sd"])
def test_layout_invariant_batches_are_bit_identical(zoo, family):
    adapter = zoo.adapter(family)
    records = [PromptRecord("t", str(k), p, seed=10 + k) for k, p in enumerate(PROMPTS)]
    one = run(adapter, records, 1, layout_invariant=True)
    three = run(adapter, records, 3, layout_invariant=True)
    assert one.keys() == three.keys() and len(one) == 9
    assert one == three  # exact equality of every score (the mean of the decoded image, float32)
    batched = run(adapter, records, 3, layout_invariant=False)
    assert batched.keys() == one.keys()
    # batched kernels may round differently, but never by more than float32 noise
    assert max(abs(batched[k] - one[k]) for k in one) < 1e-5
