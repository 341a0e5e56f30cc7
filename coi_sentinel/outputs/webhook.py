"""HTTP webhook: alerts POSTed as JSON, in batches, with retries and backoff.

With ``batch=1`` (the default) each POST is one alert object, as falcosidekick and Falco's
own http output send it; with ``batch=N`` each POST is a JSON array of up to N alerts (those
waiting when the worker wakes). 2xx is delivered; 408, 429, 5xx and connection errors are
retried (``retries``, default 5, backoff from ``backoff`` s doubling up to 5 s); another 4xx
means the receiver refuses the alert: it is counted lost at once (reason ``rejected``).
"""

from __future__ import annotations

import ssl
import urllib.error
import urllib.request
from typing import Any

from .base import DeliveryError, Output
from .spec import OutputSpec

RETRYABLE = {408, 425, 429}


class WebhookOutput(Output):
    def __init__(self, spec: OutputSpec) -> None:
        super().__init__(spec)
        self.url = spec.target
        self.batch_size = spec.opt("batch", 1)
        self.retries = spec.opt("retries", 5)
        self.backoff = spec.opt("backoff", 0.2)
        self.timeout: float = spec.opt("timeout", 5.0)
        self.headers = {"Content-Type": "application/json", "User-Agent": "coi-sentinel",
                        **dict(spec.headers)}
        handlers: list[Any] = [urllib.request.ProxyHandler({})]    # straight to the receiver
        if self.url.startswith("https:"):
            ctx = ssl.create_default_context(cafile=spec.opt("ca", None))
            if not spec.opt("verify", True):
                ctx.check_hostname = False
                ctx.verify_mode = ssl.CERT_NONE
            handlers.append(urllib.request.HTTPSHandler(context=ctx))
        self._opener = urllib.request.build_opener(*handlers)

    def deliver(self, payloads: list[Any]) -> None:
        body = payloads[0] if self.batch_size == 1 else b"[" + b",".join(payloads) + b"]"
        req = urllib.request.Request(self.url, data=body, headers=self.headers, method="POST")
        try:
            with self._opener.open(req, timeout=self.timeout) as resp:
                resp.read()
        except urllib.error.HTTPError as err:
            retry = err.code in RETRYABLE or err.code >= 500
            raise DeliveryError(f"{self.url}: HTTP {err.code} {err.reason}", retry=retry) from None
        except urllib.error.URLError as err:
            raise DeliveryError(f"{self.url}: {err.reason}") from None
