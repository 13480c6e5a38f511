"""Schemathesis hooks for statelab's OpenAPI documents (loaded through SCHEMATHESIS_HOOKS).

The cache's listing cursor has the format `statelab-cache-cursor`: the empty string (the first
page) or a cursor the API gave out. JSON Schema cannot say "a value this server returned", so
valid cursors are generated here the way the server writes them: `<scan>[~<hex of a key>]` then
`.` and 16 hex digits of FNV-1a (64 bits) of `statelab-cache-cursor:` and that text. Anything
else is a made-up cursor, which the server refuses with 422 (the negative phase sends those).

The built-in check `use_after_free` (ST301) is replaced by `use_after_free_or_stored_again`,
which fails in exactly the same cases except one it misreads; see that function.
"""

from hypothesis import strategies as st

import schemathesis
from schemathesis.openapi.checks import UseAfterFree
from schemathesis.specs.openapi.checks import use_after_free


def _check(body: str) -> int:
    value = 0xCBF29CE484222325
    for byte in b"statelab-cache-cursor:" + body.encode():
        value = ((value ^ byte) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return value


def _cursor(scan: int, after: bytes | None) -> str:
    body = str(scan) if after is None else f"{scan}~{after.hex()}"
    return f"{body}.{_check(body):016x}"


schemathesis.openapi.format(
    "statelab-cache-cursor",
    st.just("")
    | st.builds(
        _cursor,
        st.integers(min_value=0, max_value=2**64 - 1),
        st.none() | st.binary(min_size=1, max_size=64),
    ),
)


@schemathesis.check
def use_after_free_or_stored_again(ctx, response, case):
    """ST301, "deleted resource still available", without one false alarm.

    The built-in check lets a read find a deleted resource again only if a successful write
    between the DELETE and the read re-created it, and it counts as such only a write to the
    resource's own path or a path above it. The cache's seed route `POST /cache/{key}/{value}`
    carries the value one path segment below the key, so the stateful phase's
    DELETE /cache/k, POST /cache/k/v, GET /cache/k (which rightly finds v) was reported as a
    use after free. Here such a write also counts: a successful POST or PUT whose path is the
    deleted one followed only by path parameters. Every other case fails as before.
    """
    try:
        return use_after_free(ctx, response, case)
    except UseAfterFree as failure:
        if _stored_again_below(ctx, failure.deleted_case_id, case.id):
            return None
        raise


def _stored_again_below(ctx, deleted_case_id, reading_case_id) -> bool:
    """Whether, between the DELETE and the read (in execution order), a successful POST or PUT
    wrote to the deleted path extended only by path parameters, e.g. /cache/{key}/{value}."""
    deleted = None
    for case in ctx.internals.find_all_cases():
        if case.id == reading_case_id:
            return False
        if case.id == deleted_case_id:
            deleted = case
            continue
        if deleted is None or case.operation.method.upper() not in ("POST", "PUT"):
            continue
        response = ctx.internals.find_response(case_id=case.id)
        if response is None or not 200 <= response.status_code < 300:
            continue
        if _extends_with_parameters(deleted, case):
            return True
    return False


def _extends_with_parameters(deleted, write) -> bool:
    deleted_parts = deleted.path.rstrip("/").split("/")
    write_parts = write.path.rstrip("/").split("/")
    extra = write_parts[len(deleted_parts):]
    if write_parts[: len(deleted_parts)] != deleted_parts or not extra:
        return False
    if not all(part.startswith("{") and part.endswith("}") for part in extra):
        return False
    deleted_values = deleted.path_parameters or {}
    write_values = write.path_parameters or {}
    return all(write_values.get(name) == value for name, value in deleted_values.items())
