"""`train.generation=vllm|vllm_server` on CPU: the GRPOConfig TRL receives and the config's errors.

The engines themselves run in `test_generation_contract.py` where vllm and CUDA are present.
"""

from __future__ import annotations

import pytest

from trainers.orbit_config import OrbitConfig, TrainConfig
from trainers.orbit_trainer import grpo_args
from trainers.vllm_generation import make_vllm_agent, vllm_grpo_kwargs


def test_hf_generation_leaves_trl_without_vllm(tmp_path):
    args = grpo_args(OrbitConfig(), tmp_path)
    assert not args.use_vllm and vllm_grpo_kwargs(TrainConfig()) == {}


@pytest.mark.parametrize(("generation", "mode"), [("vllm", "colocate"), ("vllm_server", "server")])
def test_vllm_generation_sets_trls_engine_and_importance_sampling(tmp_path, generation, mode):
    train = TrainConfig(generation=generation)
    train.vllm.gpu_memory_utilization, train.vllm.port = 0.45, 8123
    args = grpo_args(OrbitConfig(train=train), tmp_path)
    assert args.use_vllm and args.vllm_mode == mode
    assert args.vllm_gpu_memory_utilization == 0.45 and args.vllm_server_port == 8123
    assert args.vllm_enable_sleep_mode  # colocated engine sleeps while the policy trains
    assert args.vllm_importance_sampling_correction and args.vllm_importance_sampling_mode == "sequence_mask"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"generation": "sglang"}, r"train.generation='sglang' is not allowed; allowed values: \['hf', 'vllm', 'vllm_server'\]"),
        ({"vllm.gpu_memory_utilization": 1.5}, r"train.vllm.gpu_memory_utilization=1.5 must be in \(0, 1\]"),
        ({"vllm.importance_sampling_mode": "token"}, "train.vllm.importance_sampling_mode='token' is not allowed"),
    ],
)
def test_bad_vllm_settings_name_the_key(change, message):
    from trainers.orbit_config import VLLMTrainConfig

    (key, value), = change.items()
    with pytest.raises(ValueError, match=message):
        if key.startswith("vllm."):
            TrainConfig(vllm=VLLMTrainConfig(**{key.removeprefix("vllm."): value}))
        else:
            TrainConfig(**{key: value})


def test_vllm_agent_needs_a_trainer_built_with_vllm():
    class NoEngine:
        pass

    with pytest.raises(ValueError, match="train.generation=vllm or vllm_server"):
        make_vllm_agent(NoEngine(), tokenizer=None, config=OrbitConfig())
