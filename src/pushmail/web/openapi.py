"""The OpenAPI 3.1 description of the HTTP API, served at ``/api/openapi.json``.

Written by hand next to the routes (``app.make_app``); a test checks that every route
of the application is described here and nothing else.
"""

from __future__ import annotations

from typing import Any

from pushmail import __version__


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _body(schema: dict[str, Any]) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {"schema": schema}}}


def _ok(description: str, schema: dict[str, Any] | None = None, code: str = "200") -> Any:
    response: dict[str, Any] = {"description": description}
    if schema is not None:
        response["content"] = {"application/json": {"schema": schema}}
    return {code: response, "401": {"description": "not signed in"}}


_ID = [{"name": "id", "in": "path", "required": True, "schema": {"type": "integer"}}]

_SCHEMAS: dict[str, Any] = {
    "Error": {"type": "object", "properties": {"error": {"type": "string"}}},
    "Login": {
        "type": "object",
        "required": ["address", "password"],
        "properties": {"address": {"type": "string"}, "password": {"type": "string"}},
    },
    "Me": {
        "type": "object",
        "properties": {
            "address": {"type": "string"},
            "account": {"type": "string", "description": "the opaque id alerts carry"},
            "vapid_public_key": {"type": "string", "description": "applicationServerKey"},
        },
    },
    "NewDevice": {
        "type": "object",
        "required": ["kind", "endpoint"],
        "properties": {
            "kind": {"enum": ["webpush", "webhook", "ntfy"]},
            "endpoint": {"type": "string", "format": "uri"},
            "keys": {
                "type": "object",
                "description": "webpush only: PushSubscription.toJSON().keys",
                "properties": {"p256dh": {"type": "string"}, "auth": {"type": "string"}},
            },
            "secret": {
                "type": "string",
                "description": "webhook HMAC key (made and shown once if absent); ntfy token",
            },
            "label": {"type": "string", "maxLength": 100},
        },
    },
    "Device": {
        "type": "object",
        "properties": {
            "id": {"type": "integer"},
            "kind": {"enum": ["webpush", "webhook", "ntfy"]},
            "label": {"type": "string"},
            "endpoint_origin": {"type": "string"},
            "created": {"type": "number", "description": "Unix time"},
            "secret": {"type": "string", "description": "only when just made"},
        },
    },
    "Rules": {
        "type": "object",
        "properties": {
            "enabled": {"type": "boolean"},
            "muted_until": {"type": ["string", "null"], "format": "date-time"},
            "quiet_hours": {
                "type": ["object", "null"],
                "properties": {
                    "start": {"type": "string", "pattern": "^[0-2][0-9]:[0-5][0-9]$"},
                    "end": {"type": "string", "pattern": "^[0-2][0-9]:[0-5][0-9]$"},
                },
            },
            "timezone": {"type": "string", "description": "IANA name, e.g. Europe/Paris"},
            "only_from": {"type": "array", "items": {"type": "string"}},
            "folders": {"type": "array", "items": {"type": "string"}},
        },
    },
}


def openapi() -> dict[str, Any]:
    rules = _ref("Rules")
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "pushmail alerts API",
            "version": __version__,
            "description": "Devices and rules for content-free new-mail alerts.",
        },
        "components": {
            "schemas": _SCHEMAS,
            "securitySchemes": {
                "basic": {"type": "http", "scheme": "basic"},
                "cookie": {"type": "apiKey", "in": "cookie", "name": "pushmail_session"},
            },
        },
        "security": [{"basic": []}, {"cookie": []}],
        "paths": {
            "/api/login": {
                "post": {
                    "summary": "sign in; sets the session cookie",
                    "security": [],
                    "requestBody": _body(_ref("Login")),
                    "responses": _ok("signed in"),
                }
            },
            "/api/logout": {
                "post": {"summary": "sign out", "security": [], "responses": _ok("", code="204")}
            },
            "/api/me": {"get": {"summary": "who am I", "responses": _ok("", _ref("Me"))}},
            "/api/devices": {
                "get": {
                    "summary": "my devices",
                    "responses": _ok("", {"type": "array", "items": _ref("Device")}),
                },
                "post": {
                    "summary": "add (or re-key) a device",
                    "requestBody": _body(_ref("NewDevice")),
                    "responses": _ok("added", _ref("Device"), "201"),
                },
            },
            "/api/devices/{id}": {
                "delete": {
                    "summary": "remove a device",
                    "parameters": _ID,
                    "responses": _ok("removed", code="204"),
                }
            },
            "/api/devices/{id}/test": {
                "post": {
                    "summary": "send a test alert to a device",
                    "parameters": _ID,
                    "responses": _ok("queued", code="202"),
                }
            },
            "/api/rules": {
                "get": {"summary": "rules for all my devices", "responses": _ok("", rules)},
                "put": {
                    "summary": "replace the rules for all my devices (keys left out: defaults)",
                    "requestBody": _body(rules),
                    "responses": _ok("stored", rules),
                },
                "patch": {
                    "summary": "change only the rule keys given (others keep their values)",
                    "requestBody": _body(rules),
                    "responses": _ok("stored", rules),
                },
            },
            "/api/devices/{id}/rules": {
                "get": {
                    "summary": "a device's own rules (null: none)",
                    "parameters": _ID,
                    "responses": _ok("", {"oneOf": [rules, {"type": "null"}]}),
                },
                "put": {
                    "summary": "set a device's own rules (apply on top of mine)",
                    "parameters": _ID,
                    "requestBody": _body(rules),
                    "responses": _ok("stored", rules),
                },
                "patch": {
                    "summary": "change only the given keys of a device's own rules",
                    "parameters": _ID,
                    "requestBody": _body(rules),
                    "responses": _ok("stored", rules),
                },
                "delete": {
                    "summary": "drop a device's own rules",
                    "parameters": _ID,
                    "responses": _ok("dropped", code="204"),
                },
            },
        },
    }
