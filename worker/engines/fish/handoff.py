"""A tensor made on one CUDA stream, handed to another stream or to the host safely."""

from __future__ import annotations

from dataclasses import dataclass

import torch


def fence(device: torch.device) -> torch.cuda.Event | None:
    """An event after the work queued so far on the device's current stream; None on the CPU."""
    if device.type != "cuda":
        return None
    event = torch.cuda.Event()  # type: ignore[no-untyped-call]
    event.record(torch.cuda.current_stream(device))
    return event


@dataclass
class Handoff:
    tensor: torch.Tensor
    event: torch.cuda.Event | None  # recorded after the tensor was written; None on the CPU

    @classmethod
    def now(cls, tensor: torch.Tensor) -> Handoff:
        """Hand over `tensor` as written by the work queued so far on the current stream."""
        return cls(tensor, fence(tensor.device))

    def ready(self) -> bool:
        return self.event is None or bool(self.event.query())  # type: ignore[no-untyped-call]

    def wait(self) -> torch.Tensor:
        """The tensor, once written (for the host)."""
        if self.event is not None:
            self.event.synchronize()
        return self.tensor

    def on(self, stream: torch.cuda.Stream | None) -> torch.Tensor:
        """The tensor, for use on `stream`: that stream waits for it, and holds its memory."""
        if stream is not None and self.event is not None:
            stream.wait_event(self.event)
            self.tensor.record_stream(stream)
        return self.tensor

    def __getitem__(self, index: slice | tuple[slice, ...]) -> Handoff:
        return Handoff(self.tensor[index], self.event)
