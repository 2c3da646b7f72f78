"""The gateway's Flask application factory (flaskr style)."""
from __future__ import annotations

from dataclasses import dataclass

from flask import Flask, current_app

from loupe_gateway import bodies, caseless, errors, metrics, paths, ratelimit, versions
from loupe_gateway.auth import KeyResolver
from loupe_gateway.clients import Backends
from loupe_gateway.config import GatewayConfig


@dataclass
class GatewayState:
    """What every view needs: configuration, backends and the key resolver."""

    config: GatewayConfig
    backends: Backends
    keys: KeyResolver


def state() -> GatewayState:
    return current_app.extensions["loupe"]


def create_app(config: GatewayConfig, clients: Backends | None = None) -> Flask:
    """Builds the gateway app.

    Args:
        config: the gateway configuration.
        clients: backends to use; by default lazily connected clients of the configured
            targets (nothing connects until a request needs it).
    Returns:
        The Flask app (a WSGI callable).
    """
    from loupe_gateway import ui
    from loupe_gateway import openapi
    from loupe_gateway.api import fetching, health, prediction, training
    from loupe_gateway.flows import suggestions

    app = Flask(__name__, static_folder=None)
    # Query parameters and JSON properties match ignoring case (`{"Url": …}` as on Azure).
    app.request_class = caseless.CaselessRequest
    app.json = caseless.CaseInsensitiveJSON(app)
    app.json.sort_keys = False
    # Werkzeug must never parse form bodies into request.form for us (binary image parts are
    # mangled there); bodies are read raw in loupe_gateway.multipart.
    backends = clients if clients is not None else Backends(config)
    resolver = KeyResolver(backends.resolve_key, ttl=config.key_cache_seconds,
                           unknown_keys=ratelimit.RateLimiter(config.unknown_keys_per_second,
                                                              config.unknown_keys_burst))
    app.extensions["loupe"] = GatewayState(config, backends, resolver)
    app.extensions["loupe.urlfetch"] = fetching.build_fetcher(config)
    # The Smart Labeler's suggestions, kept as long as this app (a fresh app, a fresh cache).
    app.extensions["loupe.suggestions"] = suggestions.SuggestionCache()
    app.url_map.strict_slashes = False
    versions.register(app)
    errors.init_app(app)
    metrics.init_app(app)
    ratelimit.init_app(
        app, ratelimit.RateLimiter(config.rate_limit_per_second, config.rate_limit_burst)
    )
    # After the rate limiter (a limited client costs no key look-up), before every view: the
    # key and the body's cap are checked before a byte of the body is read.
    bodies.init_app(app)
    app.register_blueprint(health.bp)
    app.register_blueprint(training.bp)
    app.register_blueprint(prediction.bp)
    app.register_blueprint(ui.bp)
    app.register_blueprint(openapi.bp)
    # `…/Prediction/…` (Azure's portal) and `…/Training/…` (its REST reference) route too.
    app.wsgi_app = paths.CaseInsensitivePaths(app.url_map, app.wsgi_app)
    app.extensions["loupe.paths"] = app.wsgi_app  # bodies.admit routes as the app does
    return app
