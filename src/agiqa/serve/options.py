"""What bounds the HTTP service: request limits, the scoring queue and its batching (``ServeOptions``)."""

from __future__ import annotations

from dataclasses import dataclass, fields

MIB = 2**20


@dataclass(frozen=True)
class ServeOptions:
    """Limits and queueing of ``agiqa serve`` (each maps to a command-line option).

    Attributes:
        max_body_bytes: Largest request body (``--max-body-mb``); refused with 413 from the ``Content-Length``
            header, or as soon as a chunked upload passes it, before the body is held anywhere.
        max_image_bytes: Largest single image; a larger one is an ``error`` in its record (the others are scored).
        max_images: Most images in one request (``--max-images``); more is a 413.
        max_prompt_chars: Longest prompt, in characters (``--max-prompt-chars``); longer is a 422.
        queue_size: Most requests waiting to be scored, uploads in progress included (``--queue-size``); one more
            is answered 503 with ``Retry-After`` and ``Connection: close`` without holding its body (it is read and
            dropped, so that the client gets the answer).
        timeout_s: Longest a request may take to upload (else 408) and then wait in the queue (else 503 with
            ``Retry-After``) (``--timeout``); once its batch is being scored it is answered when that ends.
        batch_wait_ms: How long the scoring worker waits for more requests to batch with the first one
            (``--batch-wait-ms``; requests already queued are batched without waiting).
        batch_size: Images per model call, across the requests batched together (``--batch-size``).
        max_pixels: Larger images are refused before decoding (``--max-pixels``; lower than ``agiqa score``'s
            default: a network service should not decode 89-megapixel images for anyone who asks).
        echo_prompt_chars: Each result record repeats at most this much of its prompt.
    """

    max_body_bytes: int = 64 * MIB
    max_image_bytes: int = 32 * MIB
    max_images: int = 64
    max_prompt_chars: int = 10_000
    queue_size: int = 32
    timeout_s: float = 60.0
    batch_wait_ms: float = 5.0
    batch_size: int = 16
    max_pixels: int = 4096 * 4096
    echo_prompt_chars: int = 200

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if value < 0 or (value == 0 and f.name != "batch_wait_ms"):
                raise ValueError(f"ServeOptions.{f.name} must be positive, got {value}")
