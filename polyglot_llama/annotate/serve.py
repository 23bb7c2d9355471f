"""`polyglot-llama annotate serve`: run the annotation web app on this machine (uvicorn)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from ..errors import UserError
from .pairs import PairGenerator, PairSourceConfig
from .store import Store
from .web import AnnotationApp

LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


@dataclass
class ServeConfig:
    db: str
    """The annotation database (created by add-annotator, prepare or import)."""
    host: str = "127.0.0.1"
    """Address to listen on. Anything but localhost needs allow_remote (put TLS in front of it)."""
    port: int = 8765
    """TCP port."""
    allow_remote: bool = False
    """Allow listening on a non-local address (sets Secure cookies, so serve it behind HTTPS)."""
    pair_source: PairSourceConfig = field(default_factory=PairSourceConfig)
    """Models for live pairs (own prompts, continued dialogues); without model_a, such prompts are queued."""
    lease_minutes: float = 30.0
    """An item shown but not labelled for this long goes back to the pool."""
    max_body_bytes: int = 65536
    """Largest accepted request body."""
    max_text_chars: int = 8000
    """Longest accepted text field (prompt, message, note)."""

    def __post_init__(self):
        if self.host not in LOCAL_HOSTS and not self.allow_remote:
            raise UserError(f"key 'host' is {self.host!r}; the app listens on localhost only unless allow_remote: true")
        if not 0 < self.port < 65536:
            raise UserError(f"key 'port' is {self.port}; use 1-65535")
        if self.lease_minutes <= 0 or self.max_body_bytes < 1024 or self.max_text_chars < 1:
            raise UserError("keys 'lease_minutes', 'max_body_bytes' (>= 1024) and 'max_text_chars' must be positive")


def build_app(cfg: ServeConfig) -> AnnotationApp:
    store = Store(cfg.db, lease_s=cfg.lease_minutes * 60)
    generator = PairGenerator(cfg.pair_source) if cfg.pair_source.enabled else None
    return AnnotationApp(store, generator, cfg.max_body_bytes, cfg.max_text_chars, secure_cookies=cfg.allow_remote)


def run(cfg: ServeConfig) -> dict:
    import uvicorn

    app = build_app(cfg)
    print(f"annotate serve: http://{cfg.host}:{cfg.port}/ (Ctrl-C to stop)", flush=True)
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)
    uvicorn.run(app, host=cfg.host, port=cfg.port, log_level="warning")
    return {"db": cfg.db, "stopped": True}
