"""Schemathesis hooks for statelab's OpenAPI documents (loaded through SCHEMATHESIS_HOOKS).

The cache's listing cursor has the format `statelab-cache-cursor`: the empty string (the first
page) or a cursor the API gave out. JSON Schema cannot say "a value this server returned", so
valid cursors are generated here the way the server writes them: `<scan>[~<hex of a key>]` then
`.` and 16 hex digits of FNV-1a (64 bits) of `statelab-cache-cursor:` and that text. Anything
else is a made-up cursor, which the server refuses with 422 (the negative phase sends those).
"""

from hypothesis import strategies as st

import schemathesis


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
