"""The hand-written interface document (src/sts/electrum/psi-v3-openapi.json, written from the
digest, not from our code) against what the server serves at /openapi.json for
/prepaidutility/v3: the same operations, parameters, statuses and bodies, and every model with
the same fields, required fields and rules."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from sts.electrum.http import PREFIX

DOC_PATH = Path(__file__).resolve().parents[2] / "src" / "sts" / "electrum" / "psi-v3-openapi.json"


def load_doc() -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(DOC_PATH.read_text())
    return doc


@pytest.fixture(scope="module")
def served() -> dict[str, Any]:
    from fastapi import FastAPI

    from sts.electrum.routes import mount

    app = FastAPI()
    mount(app)
    schema: dict[str, Any] = app.openapi()
    return schema


class Schemas:
    """Normalised view of a document's schemas: allOf flattened, nullable unions unwrapped."""

    def __init__(self, doc: dict[str, Any]) -> None:
        self.doc = doc
        self.all = doc["components"]["schemas"]

    def get(self, ref: str) -> dict[str, Any]:
        name = ref.rsplit("/", 1)[-1]
        out: dict[str, Any] = self.all[name]
        return out

    def flat(self, schema: dict[str, Any]) -> dict[str, Any]:
        """properties and required of an object schema, following allOf."""
        if "$ref" in schema:
            schema = self.get(schema["$ref"])
        props: dict[str, Any] = {}
        required: set[str] = set()
        for part in schema.get("allOf", []):
            sub = self.flat(part)
            props.update(sub["properties"])
            required |= sub["required"]
        props.update(schema.get("properties", {}))
        required |= set(schema.get("required", []))
        return {"properties": props, "required": required}

    def kind(self, prop: dict[str, Any]) -> Any:
        """What a property holds, comparable across the two documents."""
        options = [p for p in prop.get("anyOf", [prop]) if p.get("type") != "null"]
        p: dict[str, Any] = options[0] if len(options) == 1 else {"anyOf": options}
        if "$ref" in p:
            target = self.get(p["$ref"])
            name = p["$ref"].rsplit("/", 1)[-1]
            if "oneOf" in target:  # a polymorphic family: its members
                return ("oneOf", tuple(sorted(x["$ref"].rsplit("/", 1)[-1]
                                              for x in target["oneOf"])))
            if "enum" in target:
                return ("enum", tuple(sorted(target["enum"])))
            if target.get("allOf") and len(target["allOf"]) == 1:
                return ("ref", target["allOf"][0]["$ref"].rsplit("/", 1)[-1])
            return ("ref", name)
        if "oneOf" in p:
            return ("oneOf", tuple(sorted(x["$ref"].rsplit("/", 1)[-1] for x in p["oneOf"])))
        if p.get("type") == "array":
            return ("array", self.kind(p["items"]))
        if "const" in p:
            return ("const", p["const"])
        if "enum" in p:
            return ("enum", tuple(sorted(p["enum"])))
        if p.get("type") == "object" or "additionalProperties" in p:
            return ("map", self.kind(p["additionalProperties"]))
        rules: dict[str, Any] = {k: p[k] for k in ("minLength", "maxLength") if k in p}
        if "pattern" in p and p.get("format") != "email":
            rules["pattern"] = normal_pattern(p["pattern"])
        return (p.get("type", "any"), tuple(sorted(rules.items())))


def normal_pattern(text: str) -> str:
    text = text.removeprefix("^").removesuffix("$")
    while text.startswith("(?:") and text.endswith(")"):
        text = text[3:-1]
    return re.sub(r"\\d", "[0-9]", text)


def v3_paths(served: dict[str, Any]) -> dict[str, Any]:
    return {p[len(PREFIX):]: item for p, item in served["paths"].items() if p.startswith(PREFIX)}


def body_ref(doc: dict[str, Any], op: dict[str, Any]) -> str | None:
    body = op.get("requestBody")
    if body is None:
        return None
    ref: str = body["content"]["application/json"]["schema"]["$ref"]
    return ref.rsplit("/", 1)[-1]


def responses(doc: dict[str, Any], op: dict[str, Any]) -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for status, resp in op["responses"].items():
        if "$ref" in resp:
            resp = doc["components"]["responses"][resp["$ref"].rsplit("/", 1)[-1]]
        schema = resp.get("content", {}).get("application/json", {}).get("schema", {})
        out[status] = schema["$ref"].rsplit("/", 1)[-1] if "$ref" in schema else None
    return out


def test_operations_match(served: dict[str, Any]) -> None:
    doc = load_doc()
    ours = v3_paths(served)
    assert sorted(ours) == sorted(doc["paths"])
    for path, item in doc["paths"].items():
        assert sorted(ours[path]) == sorted(item) == ["post"], path
        want, got = item["post"], ours[path]["post"]
        assert got["operationId"] == want["operationId"], path
        assert [(p["name"], p["in"], p["required"]) for p in got["parameters"]] == [
            (p["name"], p["in"], p["required"]) for p in want["parameters"]], path
        assert body_ref(served, got) == body_ref(doc, want), path
        assert responses(served, got) == responses(doc, want), path
        assert got["security"] == [{"httpBasic": []}]
    assert served["components"]["securitySchemes"]["httpBasic"]["scheme"] == "basic"


def reachable(doc: dict[str, Any], roots: set[str]) -> set[str]:
    seen: set[str] = set()
    todo = list(roots)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        text = json.dumps(doc["components"]["schemas"][name])
        todo += re.findall(r'#/components/schemas/([A-Za-z0-9_]+)', text)
    return seen


def test_models_match(served: dict[str, Any]) -> None:
    doc = load_doc()
    mine, theirs = Schemas(doc), Schemas(served)
    roots = set()
    for item in doc["paths"].values():
        op = item["post"]
        roots |= {r for r in [body_ref(doc, op), *responses(doc, op).values()] if r}
    names = reachable(doc, roots)
    structural = {n for n in names if "properties" in doc["components"]["schemas"][n]
                  or "allOf" in doc["components"]["schemas"][n]}
    assert len(structural) > 40
    for name in sorted(structural):
        if name == "TransactionFields":  # the document's own factoring of the base class
            continue
        want, got = mine.flat({"$ref": name}), theirs.flat({"$ref": name})
        assert sorted(got["properties"]) == sorted(want["properties"]), name
        assert got["required"] == want["required"], name
        for prop in want["properties"]:
            if prop == "detailMessage":  # any JSON value
                continue
            assert theirs.kind(got["properties"][prop]) == mine.kind(want["properties"][prop]), (
                f"{name}.{prop}")
