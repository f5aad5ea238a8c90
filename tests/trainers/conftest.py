"""Trainer tests run torch on one thread: tiny models gain nothing from two, and a second thread spinning
against other processes on a shared 2-core runner multiplies step times."""

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_torch_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def briefly_imitated_policy(tmp_path_factory):
    """The tiny model after 25 imitation steps of Thompson sampling on the default bandit (~8 s): it answers
    in the action format about two turns in three, so trials of one group differ in regret and GRPO,
    per-episode credit and the oracle teacher all have a signal (the random model's trials all score alike)."""
    from trainers.orbit import load_config, load_policy
    from trainers.orbit_trainer import make_hf_agent
    from trainers.sft import imitate, imitation_data
    from trainers.tasks import TaskPool

    directory = tmp_path_factory.mktemp("briefly_imitated")
    config = load_config([f"output_dir={directory}"])
    model, tokenizer = load_policy(config)
    chat = make_hf_agent(model, tokenizer, config).chat
    data = imitation_data(TaskPool.from_config(config.env).tasks("train")[:48], chat, "thompson", max_new_tokens=8,
                          progress=False)
    imitate(model, data, steps=25, batch_size=16, lr=3e-3, warmup_steps=3, pad_id=tokenizer.pad_token_id, seed=0,
            progress=False)
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory
