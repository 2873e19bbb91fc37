"""API Gateway's mapping templates, rendered by a real Velocity engine (airspeed-ext).

airspeed-ext is LocalStack's fork of airspeed, kept for parity with the
Velocity that AWS runs: string literals keep their backslashes as Velocity 1.7
does, so the template's ``replaceAll("\\'", "'")`` means here what it means
on API Gateway. This module supplies the variables API Gateway defines:

- ``$input.params()`` / ``$input.params(name)`` (path, then query string, then
  header; an absent parameter is the empty string), ``$input.body``,
  ``$input.json(path)`` and ``$input.path(path)`` (a small JSONPath: ``$``,
  ``.name``, ``['name']``, ``[index]``);
- ``$util.escapeJavaScript`` as Apache Commons Lang's ``escapeJavaScript``
  (which API Gateway uses: ``'`` becomes ``\\'``, ``/`` becomes ``\\/``, every
  character outside printable ASCII a ``\\uXXXX`` of its UTF-16 code units),
  ``$util.urlEncode``, ``$util.urlDecode``, ``$util.base64Encode``,
  ``$util.base64Decode``, ``$util.parseJson``;
- ``$context`` as given (``identity.sourceIp``, ``stage``, ``httpMethod``, ...).
"""
from __future__ import annotations

import base64
import json
import re
import urllib.parse
from typing import Any

import airspeed

_PATH_PART = re.compile(r"\.([A-Za-z_$][\w$-]*)|\['([^']*)'\]|\[(\d+)\]")


def escape_javascript(text: str) -> str:
    """Commons Lang 2 StringEscapeUtils.escapeJavaScript, on UTF-16 code units as Java sees them."""
    out = []
    for unit in _utf16_units(text):
        if unit > 0x7F:
            out.append(f"\\u{unit:04X}")
        elif unit < 32:
            out.append({8: "\\b", 9: "\\t", 10: "\\n", 12: "\\f", 13: "\\r"}.get(unit, f"\\u{unit:04X}"))
        else:
            char = chr(unit)
            out.append({"'": "\\'", '"': '\\"', "\\": "\\\\", "/": "\\/"}.get(char, char))
    return "".join(out)


def _utf16_units(text: str) -> list[int]:
    data = text.encode("utf-16-be", "surrogatepass")
    return [int.from_bytes(data[i:i + 2], "big") for i in range(0, len(data), 2)]


def json_path(document: Any, path: str) -> Any:
    """The value at a simple JSONPath; None where there is none."""
    if not path.startswith("$"):
        raise ValueError(f"JSONPath must start with $: {path!r}")
    value, rest = document, path[1:]
    while rest:
        part = _PATH_PART.match(rest)
        if part is None:
            raise ValueError(f"unsupported JSONPath {path!r}")
        name, quoted, index = part.groups()
        rest = rest[part.end():]
        if index is not None:
            value = value[int(index)] if isinstance(value, list) and int(index) < len(value) else None
        else:
            value = value.get(name if name is not None else quoted) if isinstance(value, dict) else None
    return value


class Input:
    """``$input``: the request (or, in a response template, the integration's answer)."""

    def __init__(self, body: str, path: dict[str, str] | None = None, querystring: dict[str, str] | None = None,
                 header: dict[str, str] | None = None):
        self.body = body
        self._params = {"path": dict(path or {}), "querystring": dict(querystring or {}),
                        "header": dict(header or {})}

    def params(self, name: str | None = None):
        if name is None:
            return self._params
        for where in ("path", "querystring", "header"):
            if name in self._params[where]:
                return self._params[where][name]
        return ""

    def _document(self) -> Any:
        return json.loads(self.body) if self.body.strip() else {}

    def json(self, path: str) -> str:
        return json.dumps(json_path(self._document(), path), ensure_ascii=False)

    def path(self, path: str) -> Any:
        return json_path(self._document(), path)


class Util:
    """``$util``."""

    @staticmethod
    def escapeJavaScript(text) -> str:  # noqa: N802 (API Gateway's names)
        return escape_javascript("" if text is None else str(text))

    @staticmethod
    def urlEncode(text: str) -> str:  # noqa: N802
        return urllib.parse.quote_plus(text)

    @staticmethod
    def urlDecode(text: str) -> str:  # noqa: N802
        return urllib.parse.unquote_plus(text)

    @staticmethod
    def base64Encode(text: str) -> str:  # noqa: N802
        return base64.b64encode(text.encode()).decode()

    @staticmethod
    def base64Decode(text: str) -> str:  # noqa: N802
        return base64.b64decode(text).decode()

    @staticmethod
    def parseJson(text: str) -> Any:  # noqa: N802
        return json.loads(text)


def render(template: str, input_: Input, context: dict[str, Any]) -> str:
    """The template's output; a template error raises airspeed.TemplateError."""
    return airspeed.Template(template).merge({"input": input_, "util": Util(), "context": context})
