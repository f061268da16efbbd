"""Whether W&B logs online, decided before ``wandb.init`` can hang or fail with a traceback.

- No ``WANDB_MODE`` and no credentials: offline, silently (runs never block on a login).
- Online (``WANDB_MODE=online``, or credentials) without an API key: one line, exit code 2.
- Online but the W&B server cannot be reached within a few seconds (no network, a cluster node
  without internet): a warning, and the run logs offline. A training run is hours of compute;
  failing it, or waiting ~100 s for wandb's own timeout, over a dashboard costs more than an
  offline run, which ``wandb sync <run>/wandb/offline-run-*`` uploads later.
"""

from __future__ import annotations

import logging
import os
import threading
import urllib.error
import urllib.request
from functools import lru_cache
from pathlib import Path
from urllib.parse import urlparse

from medsr.errors import ConfigError

log = logging.getLogger(__name__)

OFFLINE_MODES = ("offline", "dryrun", "disabled")
PROBE_SECONDS = 5.0


def _base_url() -> str:
    return os.environ.get("WANDB_BASE_URL") or "https://api.wandb.ai"


def has_api_key() -> bool:
    """An API key in ``WANDB_API_KEY`` or a netrc entry for the W&B server (``wandb login``)."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    netrc = Path(os.environ.get("NETRC", Path.home() / ".netrc"))
    try:
        return (urlparse(_base_url()).hostname or "api.wandb.ai") in netrc.read_text()
    except OSError:
        return False


@lru_cache(maxsize=4)
def reachable(url: str, timeout: float = PROBE_SECONDS) -> bool:
    """The server at ``url`` answers an HTTP request (any status) within ``timeout`` seconds.
    It runs in a thread: name lookups ignore socket timeouts."""
    result: list[bool] = []

    def probe() -> None:
        try:
            with urllib.request.urlopen(url, timeout=timeout):
                result.append(True)
        except urllib.error.HTTPError:  # an answer, even 404: the network works
            result.append(True)
        except (OSError, ValueError):  # no route, no name, refused, timed out, bad URL
            result.append(False)

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(timeout)
    return bool(result and result[0])


def wandb_offline() -> bool:
    """True: W&B logs offline (see the module docstring for the rules)."""
    mode = os.environ.get("WANDB_MODE", "").strip().lower()
    if mode in OFFLINE_MODES:
        return True
    if not mode and not has_api_key():
        return True
    if not has_api_key():
        raise ConfigError(
            f"logger=wandb logs online (WANDB_MODE={mode}) but no W&B API key is set: run "
            "`wandb login` (or set WANDB_API_KEY), or log offline with WANDB_MODE=offline and "
            "upload later with `wandb sync`"
        )
    if not reachable(_base_url()):
        log.warning(
            "W&B: no answer from %s within %.0f s (no network?); this run logs offline to "
            "<run folder>/wandb/offline-run-*: upload it later with `wandb sync <that folder>`",
            _base_url(),
            PROBE_SECONDS,
        )
        return True
    return False
