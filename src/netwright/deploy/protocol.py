"""The Open Inference Protocol v2 on the wire: JSON requests, the binary tensor extension that
NVIDIA's tritonclient uses by default (header ``Inference-Header-Content-Length``: the first N
bytes are the JSON request, then each input's ``parameters.binary_data_size`` raw little-endian
bytes, in order), responses in either form, and the request schemas that /openapi.json shows.

Every check raises :class:`BadRequest` with one line naming the problem and the fix: malformed
input never reaches the model and never answers 5xx.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

import numpy as np
import orjson
from starlette.responses import Response

DATATYPES = {"FP32": np.float32, "FP64": np.float64, "INT64": np.int64, "INT32": np.int32}
HEADER_LENGTH = "inference-header-content-length"


class BadRequest(Exception):
    """A request the server refuses: its HTTP status, a one-line message, extra headers."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.message, self.headers = status, message, headers


def parse_json(body: bytes) -> Any:
    """A request's JSON: orjson reads a valid body (a 28x28 tensor in 20 us against the standard
    library's 250, the largest cost of a small request); whatever it refuses is read again by the
    standard library, whose error names the problem (NaN, nesting, the position of a typo)."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        pass
    try:
        return json.loads(body, parse_constant=_reject_constant)
    except RecursionError:
        raise BadRequest(400, "JSON nested too deeply; send flat lists (a tensor's data may be one flat list)") from None
    except (ValueError, UnicodeDecodeError) as e:  # JSONDecodeError, over-long integers
        raise BadRequest(400, f"malformed JSON: {e}") from None


def _reject_constant(name: str) -> float:
    raise BadRequest(400, f"{name} is not a number this model accepts; send finite values")


def _show(value: Any) -> str:
    """A value for an error message, cut short."""
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _object(value: Any, where: str) -> dict:
    if not isinstance(value, dict):
        raise BadRequest(400, f"{where} must be a JSON object")
    return value


def _flag(params: dict, key: str, where: str) -> bool | None:
    value = params.get(key)
    if value is not None and not isinstance(value, bool):
        raise BadRequest(400, f"{where}.parameters.{key} must be true or false")
    return value


def split_request(body: bytes, header_length: str | None) -> tuple[dict, bytes]:
    """The JSON request and the bytes after it (the binary tensor extension)."""
    if header_length is None:
        return _object(parse_json(body), "the request"), b""
    n = int(header_length) if re.fullmatch(r"\s*[0-9]{1,15}\s*", header_length) else -1  # ASCII digits only
    if not 0 <= n <= len(body):
        raise BadRequest(400, f"Inference-Header-Content-Length {_show(header_length)}: give the byte length of the "
                              f"JSON part (0..{len(body)})")
    return _object(parse_json(body[:n]), "the request"), body[n:]


def input_tensor(request: dict, tail: bytes, name: str, sample_shape: tuple[int, ...]) -> np.ndarray:
    """The one input tensor of an inference request, checked against the model's input
    (``name``, ``[N, *sample_shape]``), as the datatype the request names."""
    inputs = request.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise BadRequest(400, 'expected {"inputs": [{"name", "shape", "datatype", "data"}]}')
    if len(inputs) != 1:
        raise BadRequest(400, f"this model takes one input tensor, got {len(inputs)}")
    problems = [] if isinstance(request.get("id", ""), str) else ["id must be a string"]
    t = _object(inputs[0], "inputs[0]")
    size = _object(t.get("parameters", {}), "inputs[0].parameters").get("binary_data_size")
    problems += [f"inputs[0] is missing the field '{key}'"
                 for key in ("name", "shape", "datatype") + (() if size is not None else ("data",)) if key not in t]
    if "name" in t and t["name"] != name:
        problems.append(f"unknown input {_show(t['name'])}; this model's input is '{name}'")
    datatype, shape = t.get("datatype"), t.get("shape")
    if "datatype" in t and not (isinstance(datatype, str) and datatype in DATATYPES):
        problems.append(f"datatype {_show(datatype)} is not supported; use {', '.join(DATATYPES)}")
    if "shape" in t and not (isinstance(shape, list) and all(type(s) is int and s > 0 for s in shape)):
        problems.append("shape must be a list of positive integers")
    elif "shape" in t and tuple(shape[1:]) != sample_shape:
        problems.append(f"shape {_show(shape)} does not fit: this model takes [N, {', '.join(map(str, sample_shape))}]")
    if problems:  # every wrong field at once, not the first
        raise BadRequest(400, "; ".join(problems))
    count, dtype = math.prod(shape), np.dtype(DATATYPES[datatype])
    if size is None:
        if tail:
            raise BadRequest(400, f"{len(tail)} bytes follow the JSON request but no input has parameters.binary_data_size")
        x = as_array(t["data"], datatype)
    else:
        if "data" in t:
            raise BadRequest(400, "inputs[0] has both data and parameters.binary_data_size; send one of them")
        if type(size) is not int or size != len(tail) or size != count * dtype.itemsize:
            raise BadRequest(400, f"parameters.binary_data_size {_show(size)}: shape {_show(shape)} of {datatype} takes "
                                  f"{count * dtype.itemsize} bytes, and {len(tail)} follow the JSON request")
        x = np.frombuffer(tail, dtype.newbyteorder("<")).astype(dtype)
    if x.size != count:
        raise BadRequest(400, f"data has {x.size} values; shape {_show(shape)} needs {count}")
    return x.reshape(shape)


def as_array(data: Any, datatype: str) -> np.ndarray:
    """A (nested) list of JSON numbers as an array of ``datatype``, refusing what does not fit it."""
    dtype = np.dtype(DATATYPES[datatype])
    try:
        a = np.asarray(data)
    except ValueError:  # ragged lists
        a = None
    python_ints = a is not None and a.dtype == object and all(type(v) is int for v in a.flat)  # beyond 64 bits
    if a is None or (a.dtype.kind not in "iuf" and not python_ints):
        raise BadRequest(400, f"data must be a list (flat or nested) of numbers of type {datatype}")
    if dtype.kind == "i":
        if a.dtype.kind == "f" and not (np.isfinite(a).all() and (a == np.round(a)).all()):
            raise BadRequest(400, f"data of type {datatype} must be whole numbers")
        lo, hi = np.iinfo(dtype).min, np.iinfo(dtype).max
        if a.size and (a.min() < lo or a.max() > hi):
            raise BadRequest(400, f"data holds a value outside {datatype}'s range {lo}..{hi}; send smaller numbers")
    try:
        with np.errstate(over="ignore"):  # floats beyond FP32 become infinity, refused with the NaN check
            return a.astype(dtype)
    except OverflowError:
        raise BadRequest(400, f"data holds a value outside {datatype}'s range; send smaller numbers") from None


def wants_binary(request: dict, output: str) -> bool:
    """Whether the request asks for ``output`` as raw bytes (binary tensor extension)."""
    binary = _flag(_object(request.get("parameters", {}), "parameters"), "binary_data_output", "request") or False
    outputs = request.get("outputs", [])
    if not isinstance(outputs, list):
        raise BadRequest(400, "outputs must be a list of {\"name\": ...} objects")
    for i, o in enumerate(outputs):
        if _object(o, f"outputs[{i}]").get("name") != output:
            raise BadRequest(400, f"unknown output {_show(o.get('name'))}; this model's output is '{output}'")
        own = _flag(_object(o.get("parameters", {}), f"outputs[{i}].parameters"), "binary_data", f"outputs[{i}]")
        binary = binary if own is None else own
    return binary


def infer_response(request: dict, model_name: str, output: str, out: np.ndarray, binary: bool) -> Response:
    """The inference response: JSON, or (``binary``) a JSON header then raw little-endian bytes."""
    tensor: dict[str, Any] = {"name": output, "datatype": "FP32", "shape": list(out.shape)}
    raw = b""
    if binary:
        raw = np.ascontiguousarray(out, dtype="<f4").tobytes()
        tensor["parameters"] = {"binary_data_size": len(raw)}
    else:
        tensor["data"] = out.reshape(-1).tolist()
    header = {"model_name": model_name, "model_version": "1", "outputs": [tensor]}
    if "id" in request:
        header["id"] = request["id"]
    text = json.dumps(header).encode()
    if not raw:
        return Response(text, media_type="application/json")
    return Response(text + raw, media_type="application/octet-stream", headers={"Inference-Header-Content-Length": str(len(text))})


# ---------------------------------------------------------------------- OpenAPI


def _params(**props: Any) -> dict:
    return {"type": "object", "properties": props}


TENSOR = {"type": "object", "required": ["name", "shape", "datatype"], "properties": {
    "name": {"type": "string"},
    "shape": {"type": "array", "items": {"type": "integer", "minimum": 1}},
    "datatype": {"type": "string", "enum": list(DATATYPES)},
    "data": {"type": "array", "items": {"anyOf": [{"type": "number"}, {"type": "array"}]},
             "description": "row-major values, flat or nested; leave out when parameters.binary_data_size is given"},
    "parameters": _params(binary_data_size={"type": "integer", "minimum": 0})},
    # the values come as data, or as raw bytes after the JSON header (the binary tensor extension)
    "anyOf": [{"required": ["data"]}, {"required": ["parameters"], "properties": {"parameters": {
        "required": ["binary_data_size"]}}}]}
INFER_REQUEST = {"type": "object", "required": ["inputs"], "properties": {
    "id": {"type": "string"},
    "inputs": {"type": "array", "items": TENSOR, "minItems": 1, "maxItems": 1},
    "outputs": {"type": "array", "items": {"type": "object", "required": ["name"], "properties": {
        "name": {"type": "string"}, "parameters": _params(binary_data={"type": "boolean"})}}},
    "parameters": _params(binary_data_output={"type": "boolean"})}}
RAW_FIELDS = {
    "image": {"type": "string", "description": "a base64 PNG or JPEG, optionally a data: URL"},
    "pixels": {"type": "array", "description": "raw pixel values, one image or a list of them"},
    "values": {"type": "array", "description": "a sequence of raw values, or a list of them"},
    "features": {"anyOf": [{"type": "object"}, {"type": "array", "items": {"type": "object"}}],
                 "description": "{feature name: value}, or a list of them"},
    "text": {"type": "string"}}
SERVED_METHODS = ("saliency", "integrated_gradients", "smoothgrad", "gradcam", "occlusion")  # fast enough per request


def raw_request(fields: list[str], explain: bool = False) -> dict:
    """The JSON schema of a /predict (or /explain) body for a model that takes ``fields``."""
    props = {k: RAW_FIELDS[k] for k in fields}
    if explain:
        props["method"] = {"type": "string", "enum": list(SERVED_METHODS)}
    return {"type": "object", "properties": props, "anyOf": [{"required": [k]} for k in fields]}


def body_schema(schema: dict, description: str) -> dict:
    """``openapi_extra`` declaring a JSON request body (the routes read the raw body themselves)."""
    return {"requestBody": {"required": True, "description": description,
                            "content": {"application/json": {"schema": schema}}}}
