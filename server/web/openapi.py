"""``/api/openapi.json``: an OpenAPI 3 description of the HTTP API.

Written by hand next to the code it describes; a test compares it with the app's routes so
an endpoint cannot be added without being described.
"""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify

from server.post_policy.request import (
    CONTENT_TYPE_PATTERN,
    MAX_CONTENT_TYPE_CHARS,
    MAX_FILENAME_CHARS,
)
from server.uploads.verdicts import REASONS
from server.uppy.requests import (
    MAX_KEY_CHARS,
    MAX_PART_NUMBER,
    MAX_UPLOAD_ID_CHARS,
    METHODS,
    OPERATIONS,
)

bp = Blueprint("openapi", __name__)

_ERROR = {"$ref": "#/components/schemas/Error"}


def _error_response(description: str, retry_after: bool = False) -> dict:
    response: dict = {
        "description": description,
        "content": {"application/json": {"schema": _ERROR}},
    }
    if retry_after:
        response["headers"] = {
            "Retry-After": {"schema": {"type": "integer"}, "description": "seconds to wait"}
        }
    return response


_UNAUTHORIZED = _error_response("Missing, invalid or expired bearer token.")
_TOKEN_RESPONSES = {
    "401": _UNAUTHORIZED,
    "429": _error_response("Too many credential requests for this user.", retry_after=True),
    "500": _error_response("Server misconfigured (details in the server log)."),
    "403": _error_response("The caller's token does not meet the destination's required claims."),
    "404": _error_response("No such destination."),
    "503": _error_response("STS unreachable or throttling.", retry_after=True),
}
_DESTINATION_FIELD = {
    "type": "string",
    "description": "a destination's name (GET /api/destinations); the default when left out",
}

_SCHEMAS: dict = {
    "Error": {
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {
                "type": "object",
                "required": ["code", "message"],
                "properties": {"code": {"type": "string"}, "message": {"type": "string"}},
            }
        },
    },
    "Callback": {
        "type": "object",
        "description": "ali-oss options.callback",
        "required": ["url", "body", "contentType", "callbackSNI", "customValue"],
        "properties": {
            "url": {"type": "string"},
            "host": {"type": "string"},
            "body": {"type": "string"},
            "contentType": {
                "type": "string",
                "enum": ["application/json", "application/x-www-form-urlencoded"],
            },
            "callbackSNI": {"type": "boolean"},
            "customValue": {"type": "object", "additionalProperties": {"type": "string"}},
        },
    },
    "StsToken": {
        "type": "object",
        "required": [
            "accessKeyId",
            "accessKeySecret",
            "stsToken",
            "expiration",
            "region",
            "bucket",
            "endpoint",
            "secure",
            "destination",
            "prefix",
            "callback",
            "limits",
        ],
        "properties": {
            "accessKeyId": {"type": "string"},
            "accessKeySecret": {"type": "string"},
            "stsToken": {"type": "string"},
            "expiration": {"type": "string", "format": "date-time"},
            "region": {"type": "string"},
            "bucket": {"type": "string"},
            "endpoint": {"type": ["string", "null"]},
            "secure": {"type": "boolean"},
            "destination": {"type": "string"},
            "prefix": {"type": "string"},
            "callback": {"oneOf": [{"$ref": "#/components/schemas/Callback"}, {"type": "null"}]},
            "limits": {
                "type": "object",
                "required": ["maxBytes", "contentTypes"],
                "properties": {
                    "maxBytes": {"type": "integer"},
                    "contentTypes": {"type": "array", "items": {"type": "string"}},
                },
            },
        },
    },  # fmt: skip
    "MobileStsToken": {
        "type": "object",
        "required": [
            "StatusCode",
            "AccessKeyId",
            "AccessKeySecret",
            "SecurityToken",
            "Expiration",
        ],
        "properties": {
            "StatusCode": {"type": "integer"},
            "AccessKeyId": {"type": "string"},
            "AccessKeySecret": {"type": "string"},
            "SecurityToken": {"type": "string"},
            "Expiration": {"type": "string", "format": "date-time"},
        },
    },  # fmt: skip
    "UploadRecord": {
        "type": "object",
        "required": [
            "id",
            "bucket",
            "key",
            "etag",
            "size",
            "contentType",
            "destination",
            "status",
            "source",
            "custom",
            "createdAt",
            "updatedAt",
        ],
        "properties": {
            "id": {"type": "integer"},
            "bucket": {"type": "string"},
            "key": {"type": "string"},
            "etag": {"type": "string"},
            "size": {"type": "integer"},
            "contentType": {"type": "string"},
            "destination": {"type": "string"},
            "status": {"type": "string", "enum": ["accepted", "rejected"]},
            "reason": {"type": "string", "enum": list(REASONS)},
            "message": {"type": "string"},
            "source": {
                "type": "string",
                "enum": ["callback", "confirm", "sweep", "reconcile", "signer"],
            },
            "custom": {"type": "object", "additionalProperties": {"type": "string"}},
            "createdAt": {"type": "string", "format": "date-time"},
            "updatedAt": {"type": "string", "format": "date-time"},
        },
    },  # fmt: skip
    "CallbackAnswer": {
        "description": "The verdict on an upload: recorded, or rejected (its object removed)",
        "oneOf": [
            {
                "type": "object",
                "required": [
                    "status",
                    "recordId",
                    "key",
                    "size",
                    "etag",
                    "contentType",
                    "destination",
                ],
                "properties": {
                    "status": {"type": "string", "enum": ["recorded"]},
                    "recordId": {"type": "integer"},
                    "key": {"type": "string"},
                    "size": {"type": "integer"},
                    "etag": {"type": "string"},
                    "contentType": {"type": "string"},
                    "destination": {"type": "string"},
                },
            },
            {
                "type": "object",
                "required": ["status", "reason", "message"],
                "properties": {
                    "status": {"type": "string", "enum": ["rejected"]},
                    "reason": {"type": "string", "enum": list(REASONS)},
                    "message": {"type": "string"},
                },
            },
        ],
    },  # fmt: skip
    "PostPolicy": {
        "type": "object",
        "description": "Post every field, then the file as the last part, to url (form-data)",
        "required": ["url", "fields", "key", "expiresAt", "destination"],
        "properties": {
            "destination": {"type": "string"},
            "url": {"type": "string"},
            "fields": {"type": "object", "additionalProperties": {"type": "string"}},
            "key": {"type": "string"},
            "expiresAt": {"type": "string", "format": "date-time"},
        },
    },
    "Destination": {
        "type": "object",
        "required": ["name", "prefix", "maxBytes", "contentTypes", "formUpload"],
        "properties": {
            "name": {"type": "string"},
            "prefix": {"type": "string", "description": "the key prefix template ({user})"},
            "maxBytes": {"type": "integer"},
            "contentTypes": {"type": "array", "items": {"type": "string"}},
            "formUpload": {"type": "string", "enum": ["off", "auto", "always"]},
        },
    },
    "Health": {
        "type": "object",
        "required": ["status"],
        "properties": {
            "status": {"type": "string"},
            "checks": {"type": "object", "additionalProperties": {"type": "string"}},
        },
    },
}

_TOKEN_OPERATION = {
    "summary": "STS credentials for the caller's prefix, with callback parameters",
    "security": [{"bearer": []}],
    "parameters": [
        {
            "name": "format",
            "in": "query",
            "required": False,
            "schema": {"type": "string", "enum": ["mobile"]},
            "description": "mobile: the Alibaba Cloud mobile SDK shape",
        }
    ],
    "requestBody": {
        "required": False,
        "content": {
            "application/json": {
                "schema": {"type": "object", "properties": {"destination": _DESTINATION_FIELD}}
            }
        },
    },
    "responses": {
        "200": {
            "description": "Credentials (Cache-Control: no-store)",
            "content": {
                "application/json": {
                    "schema": {
                        "oneOf": [
                            {"$ref": "#/components/schemas/StsToken"},
                            {"$ref": "#/components/schemas/MobileStsToken"},
                        ]
                    }
                }
            },
        },
        "400": _error_response("Unknown format."),
        **_TOKEN_RESPONSES,
    },
}

#: The mobile shape is a GET: no body, the destination in the query.
_TOKEN_GET_OPERATION = {
    **{k: v for k, v in _TOKEN_OPERATION.items() if k != "requestBody"},
    "parameters": [
        *_TOKEN_OPERATION["parameters"],
        {"name": "destination", "in": "query", "required": False, "schema": _DESTINATION_FIELD},
    ],
}

_PATHS: dict = {
    "/api/uploads": {
        "get": {
            "summary": "The caller's upload records, newest first",
            "security": [{"bearer": []}],
            "parameters": [
                {
                    "name": "limit",
                    "in": "query",
                    "required": False,
                    "schema": {"type": "integer", "minimum": 1, "maximum": 100, "default": 50},
                },
                {"name": "cursor", "in": "query", "required": False, "schema": {"type": "string"}},
                {
                    "name": "status",
                    "in": "query",
                    "required": False,
                    "schema": {
                        "type": "string",
                        "enum": ["accepted", "rejected", "all"],
                        "default": "accepted",
                    },
                },
                {
                    "name": "destination",
                    "in": "query",
                    "required": False,
                    "schema": {"type": "string"},
                },
            ],
            "responses": {
                "200": {
                    "description": "One page of records",
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "required": ["uploads", "nextCursor"],
                                "properties": {
                                    "uploads": {
                                        "type": "array",
                                        "items": {"$ref": "#/components/schemas/UploadRecord"},
                                    },
                                    "nextCursor": {"type": ["string", "null"]},
                                },
                            }
                        }
                    },
                },
                "400": _error_response("Bad limit, cursor or status."),
                "401": _UNAUTHORIZED,
            },
        }
    },
    "/api/uploads/confirm": {
        "post": {
            "summary": "The verdict on one of the caller's uploads, now (after a 203)",
            "security": [{"bearer": []}],
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": {
                            "type": "object",
                            "required": ["key"],
                            "properties": {"key": {"type": "string", "minLength": 1}},
                        }
                    }
                },
            },
            "responses": {
                "200": {
                    "description": "The same answer as the upload's callback",
                    "content": {
                        "application/json": {
                            "schema": {"$ref": "#/components/schemas/CallbackAnswer"}
                        }
                    },
                },
                "400": _error_response("No key, or not a string."),
                "401": _UNAUTHORIZED,
                "403": _error_response("The key is not under the caller's prefix."),
                "404": _error_response("No such object."),
                "429": _error_response("Too many requests.", retry_after=True),
                "503": _error_response("The bucket or the records are unavailable."),
            },
        }
    },
    "/oss/callback": {
        "post": {
            "summary": "OSS upload callback (RSA-signed by OSS, grant-bound; judges the upload)",
            "parameters": [
                {
                    "name": "authorization",
                    "in": "header",
                    "required": True,
                    "schema": {"type": "string"},
                    "description": "base64 RSA-MD5 signature",
                },
                {
                    "name": "x-oss-pub-key-url",
                    "in": "header",
                    "required": True,
                    "schema": {"type": "string"},
                    "description": "base64 URL of the public key",
                },
            ],
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {"schema": {"type": "object"}},
                    "application/x-www-form-urlencoded": {"schema": {"type": "object"}},
                },
            },
            "responses": {
                "200": {
                    "description": "Recorded; OSS relays this JSON to the uploader",
                    "content": {
                        "application/json": {
                            "schema": {"$ref": "#/components/schemas/CallbackAnswer"}
                        }
                    },
                },
                "400": _error_response("Malformed headers or body."),
                "403": _error_response(
                    "Bad signature, untrusted key, no valid grant binding, or not the bound "
                    "user's upload."
                ),
                "404": _error_response("The named object is not in the bucket."),
                "413": _error_response("Body too large."),
                "415": _error_response("Unsupported body type."),
                "503": _error_response("Key fetch, confirmation or database unavailable."),
            },
        }
    },  # fmt: skip
    "/api/destinations": {
        "get": {
            "summary": "The destinations the caller may use, with their limits",
            "security": [{"bearer": []}],
            "responses": {
                "200": {
                    "description": "In the configuration's order (Cache-Control: no-store)",
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "required": ["destinations", "default"],
                                "properties": {
                                    "destinations": {
                                        "type": "array",
                                        "items": {"$ref": "#/components/schemas/Destination"},
                                    },
                                    "default": {"type": ["string", "null"]},
                                },
                            }
                        }
                    },
                },
                "401": _UNAUTHORIZED,
            },
        }
    },
    "/healthz": {
        "get": {
            "summary": "Liveness",
            "responses": {
                "200": {
                    "description": "Up",
                    "content": {
                        "application/json": {"schema": {"$ref": "#/components/schemas/Health"}}
                    },
                }
            },
        }
    },
    "/readyz": {
        "get": {
            "summary": "Readiness",
            "responses": {
                "200": {
                    "description": "Ready",
                    "content": {
                        "application/json": {"schema": {"$ref": "#/components/schemas/Health"}}
                    },
                },
                "503": {
                    "description": "Not ready",
                    "content": {
                        "application/json": {"schema": {"$ref": "#/components/schemas/Health"}}
                    },
                },
            },
        }
    },
    "/api/openapi.json": {
        "get": {
            "summary": "This document",
            "responses": {"200": {"description": "OpenAPI 3 document"}},
        }
    },
    "/": {
        "get": {
            "summary": "The upload page",
            "responses": {"200": {"description": "HTML", "content": {"text/html": {}}}},
        }
    },
    "/metrics": {
        "get": {
            "summary": "Prometheus metrics (internal: for the operator's scraper)",
            "description": "Internal, not part of the API: answers only the addresses in "
            "OSSGATE_METRICS_ALLOW (this host by default) and 404 to others; absent with "
            "OSSGATE_METRICS_ENABLED=false. See docs/metrics.md.",
            "responses": {
                "200": {"description": "Prometheus text format", "content": {"text/plain": {}}},
                "404": {"description": "Not allowed to scrape, or metrics are off"},
            },
        }
    },
}

_DEV_LOGIN = {
    "post": {
        "summary": "Demo login (only when OSSGATE_DEV_USERS is set)",
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {
                        "type": "object",
                        "required": ["username", "password"],
                        "properties": {
                            "username": {"type": "string", "minLength": 1, "maxLength": 256},
                            "password": {"type": "string", "minLength": 1, "maxLength": 1024},
                        },
                    }
                }
            },
        },
        "responses": {
            "200": {
                "description": "A bearer token for the API",
                "content": {
                    "application/json": {
                        "schema": {
                            "type": "object",
                            "required": ["token", "expiresAt"],
                            "properties": {
                                "token": {"type": "string"},
                                "expiresAt": {"type": "string", "format": "date-time"},
                            },
                        }
                    }
                },
            },
            "400": _error_response("Malformed request body."),
            "401": _error_response("Unknown user or wrong password."),
            "415": _error_response("The body is not JSON."),
            "429": _error_response("Too many login attempts from this address.", retry_after=True),
        },
    }
}


def _post_policy_operation(max_bytes: int) -> dict:
    return {
        "post": {
            "summary": "A V4-signed PostObject form for one upload (the server picks the key)",
            "security": [{"bearer": []}],
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": {
                            "type": "object",
                            "required": ["filename", "size", "contentType"],
                            "properties": {
                                "filename": {
                                    "type": "string",
                                    "minLength": 1,
                                    "maxLength": MAX_FILENAME_CHARS,
                                },
                                "size": {"type": "integer", "minimum": 1, "maximum": max_bytes},
                                "contentType": {
                                    "type": "string",
                                    "maxLength": MAX_CONTENT_TYPE_CHARS,
                                    "pattern": CONTENT_TYPE_PATTERN,
                                },
                                "destination": _DESTINATION_FIELD,
                            },
                        }
                    }
                },
            },
            "responses": {
                "200": {
                    "description": "Form fields (Cache-Control: no-store)",
                    "content": {
                        "application/json": {"schema": {"$ref": "#/components/schemas/PostPolicy"}}
                    },
                },
                "400": _error_response("Malformed request body."),
                "413": _error_response("The declared size is over the limit."),
                "415": _error_response("Content type not allowed, or the body is not JSON."),
                **_TOKEN_RESPONSES,
            },
        }
    }


_UPPY_PAGE = {
    "get": {
        "summary": "The upload page with Uppy's Dashboard (POST /api/uppy/sign)",
        "responses": {"200": {"description": "HTML", "content": {"text/html": {}}}},
    }
}

_UPPY_SIGN = {
    "post": {
        "summary": "An OSS V4 presigned URL for one request of Uppy's @uppy/aws-s3 (signRequest)",
        "description": (
            "The body is what @uppy/aws-s3 passes to signRequest ({method, key, uploadId?, "
            "partNumber?}), optionally with the operation and what the caller knows of the "
            "file. The URL is signed with the caller's STS credentials and lives a few "
            "minutes. For putObject and createMultipartUpload the server chooses the key "
            "(returned as `key`); any other request must name a key under the caller's "
            "prefix. putObject and completeMultipartUpload carry the upload callback. A "
            "multipart upload whose parts exceed the destination's limit is aborted, recorded "
            "as rejected and refused (413) instead of signed."
        ),
        "security": [{"bearer": []}],
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {
                        "type": "object",
                        "required": ["method"],
                        "properties": {
                            "method": {"type": "string", "enum": list(METHODS)},
                            "operation": {"type": "string", "enum": list(OPERATIONS)},
                            "key": {"type": "string", "minLength": 1, "maxLength": MAX_KEY_CHARS},
                            "uploadId": {
                                "type": "string",
                                "minLength": 1,
                                "maxLength": MAX_UPLOAD_ID_CHARS,
                            },
                            "partNumber": {
                                "type": "integer",
                                "minimum": 1,
                                "maximum": MAX_PART_NUMBER,
                            },
                            "destination": _DESTINATION_FIELD,
                            "filename": {
                                "type": "string",
                                "minLength": 1,
                                "maxLength": MAX_FILENAME_CHARS,
                            },
                            "contentType": {
                                "type": "string",
                                "maxLength": MAX_CONTENT_TYPE_CHARS,
                                "pattern": CONTENT_TYPE_PATTERN,
                            },
                            "size": {"type": "integer", "minimum": 0},
                        },
                    }
                }
            },
        },
        "responses": {
            "200": {
                "description": "The signed URL (Cache-Control: no-store)",
                "content": {
                    "application/json": {
                        "schema": {
                            "type": "object",
                            "required": [
                                "url",
                                "key",
                                "method",
                                "operation",
                                "expiresAt",
                                "destination",
                            ],
                            "properties": {
                                "url": {"type": "string"},
                                "key": {"type": "string"},
                                "method": {"type": "string", "enum": list(METHODS)},
                                "operation": {"type": "string", "enum": list(OPERATIONS)},
                                "expiresAt": {"type": "string", "format": "date-time"},
                                "destination": {"type": "string"},
                            },
                        }
                    }
                },
            },
            "400": _error_response("Malformed request, or not an operation ossgate signs."),
            "403": _error_response(
                "The key is outside the caller's prefix, or the destination is not theirs."
            ),
            "404": _error_response("No such destination, or no such multipart upload."),
            "413": _error_response("The declared size, or the upload's parts, over the limit."),
            "415": _error_response("Content type not allowed, or the body is not JSON."),
            "401": _UNAUTHORIZED,
            "500": _TOKEN_RESPONSES["500"],
            "503": _error_response("STS or the bucket unreachable.", retry_after=True),
        },
    }
}


def document() -> dict:
    """The OpenAPI document for this app (the dev login only when it is enabled)."""
    paths = dict(_PATHS)
    paths["/api/sts-token"] = {"post": _TOKEN_OPERATION, "get": _TOKEN_GET_OPERATION}
    largest = max(d.max_bytes for d in current_app.extensions["ossgate"].destinations)
    paths["/api/post-policy"] = _post_policy_operation(largest)
    paths["/api/uppy/sign"] = _UPPY_SIGN
    paths["/uppy"] = _UPPY_PAGE
    if "dev_login" in current_app.blueprints:
        paths["/api/dev/login"] = _DEV_LOGIN
    return {
        "openapi": "3.1.0",
        "info": {"title": "ossgate", "version": "0.1.0"},
        "paths": paths,
        "components": {
            "schemas": _SCHEMAS,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }


@bp.get("/api/openapi.json")
def openapi_json():
    return jsonify(document())
