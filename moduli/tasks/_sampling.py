"""The sampling device shared by the on-the-fly task samplers."""

from __future__ import annotations

import torch






def resolve_device(
    generator: torch.Generator | None, device: torch.device | str | None
) -> torch.device:
    """Device on which to sample: ``device`` if given, else the generator's, else CPU.

    A ``torch.Generator`` draws only on its own device type (a CUDA generator
    lives on the GPU), so a mismatch is reported before any sampling.
    """
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(
            f"generator must be a torch.Generator or None, got {type(generator).__name__}"
        )
    if device is None:
        resolved = generator.device if generator is not None else torch.device("cpu")
    else:
        if not isinstance(device, (torch.device, str)):
            raise TypeError(f"device must be a torch.device, str or None, got {type(device).__name__}")
        resolved = torch.device(device)
    if generator is not None and generator.device.type != resolved.type:
        raise ValueError(
            f"generator lives on {generator.device} but sampling was requested on {resolved}; "
            f"create the generator with torch.Generator(device='{resolved.type}')"
        )
    return resolved
