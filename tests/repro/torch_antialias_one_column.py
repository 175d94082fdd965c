"""torch 2.13.0 (CPU): F.interpolate(mode='bilinear', antialias=True) to an output one column
wide returns its first output row in every row when the height changes (its backward is
right), so torchvision's resized_crop / resize with antialias (the default) does too.
Found by tests/test_oracle_augment.py against the antialiased resampling matrix (which
jax.image.resize and torch agree on for every other size). Run:
python tests/repro/torch_antialias_one_column.py
"""

import numpy as np
import torch
import torch.nn.functional as F

from reference.augment import resized_crop

x = np.arange(12, dtype=np.float64).reshape(1, 1, 4, 3)
y = F.interpolate(torch.tensor(x), size=(2, 1), mode="bilinear", antialias=True)
wide = F.interpolate(torch.tensor(x), size=(2, 2), mode="bilinear", antialias=True)
print("torch, output (2, 1):", y.flatten().tolist())
print("oracle:              ", resized_crop(x, 0, 0, 4, 3, (2, 1)).flatten().tolist())
print("torch, output (2, 2) rows differ:", wide[0, 0, :, 0].tolist())
