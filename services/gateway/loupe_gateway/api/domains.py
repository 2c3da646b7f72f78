"""GET /domains, GET /domains/{id}."""
from __future__ import annotations

from flask import Blueprint, jsonify

from loupe_gateway import domains

bp = Blueprint("domains", __name__)


@bp.get("/domains")
def list_domains():
    return jsonify(list(domains.DOMAINS.values()))


@bp.get("/domains/<domain_id>")
def get_domain(domain_id: str):
    return jsonify(domains.get(domain_id))
