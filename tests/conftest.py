import os
from pathlib import Path

import numpy as np
import pytest

from wav.runtime import set_threads

set_threads(1)

OFFICIAL = {
    "pool": "MiniGrid-Empty-Interact-6x6-o3-v0_MultiTaskPolicy_data_pool.npz",
    "seed": "random_selected_data.npz",
    "video": "MiniGrid-Empty-Interact-6x6-o3-v0_video_pretraing.npz",
    "o6_train": "MiniGrid-Empty-Interact-6x6-o6-v0_train.npz",
    "o6_test": "MiniGrid-Empty-Interact-6x6-o6-v0_test.npz",
    "ood_train": "MiniGrid-Empty-Interact-6x6-o3-train-v0_MultiTaskPolicy_policy_OOD_train_set.npz",
    "ood_test": "MiniGrid-Empty-Interact-6x6-o3-test-v0_MultiTaskPolicy_policy_OOD_test_set.npz",
    "noise_train": "MiniGrid-Empty-Interact-6x6-o6-3-noise-v0_train_few_sample.npz",
    "noise_test": "MiniGrid-Empty-Interact-6x6-o6-3-noise-v0_test_few_sample.npz",
}


@pytest.fixture
def official():
    """Path of a published file by short name; skip if WAV_OFFICIAL_DATA is unset, FAIL if set and missing."""
    root = os.environ.get("WAV_OFFICIAL_DATA")
    if not root:
        pytest.skip("WAV_OFFICIAL_DATA is not set")

    def get(name: str) -> Path:
        path = Path(root) / OFFICIAL[name]
        if not path.exists():
            pytest.fail(f"WAV_OFFICIAL_DATA is set but {path} is missing")
        return path

    return get


@pytest.fixture
def rng():
    return np.random.default_rng(0)
