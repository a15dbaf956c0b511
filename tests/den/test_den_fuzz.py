"""The registry fuzzed from its own /openapi.json (schemathesis): whatever the request, an
answer in the documented shape and never a 5xx. Valid requests (some aimed at a real resource of
the fuzzing user), and invalid ones (schemathesis' negative mode); 30 examples per operation."""

from __future__ import annotations

from typing import Any

import schemathesis
from conftest import DenServer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode


def test_no_server_errors_whatever_the_request(den: DenServer) -> None:
    name, client = den.user("fuzz")
    token = den.tokens[-1]
    # Something for the fuzzer to find: its own resource and group (paths are random otherwise).
    client.save(f"/{name}/a", "env", {"x": 1})
    headers = {"Authorization": f"Bearer {token}"}
    schema = schemathesis.openapi.from_url(f"{den.url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 20, [op.label for op in operations]
    for operation in operations:
        # Plain hypothesis over each operation's strategy, as tests/fuzz does for the gateway
        # (schemathesis' pytest plugin reaches into pytest internals).
        params = {p.name for p in operation.path_parameters}
        known = {
            k: v for k, v in {"owner": name, "name": "a", "group": name}.items() if k in params
        }
        strategy = st.one_of(
            operation.as_strategy(),
            operation.as_strategy(GenerationMode.NEGATIVE),
            operation.as_strategy(path_parameters=known),
        )

        @given(case=strategy)
        @settings(
            max_examples=30, deadline=None, suppress_health_check=list(HealthCheck), database=None
        )
        def check(case: Any) -> None:
            response = case.call(headers=headers, timeout=30)
            assert response.status_code < 500, (case.method, case.formatted_path, response.text)
            if response.status_code in (204, 304):
                return
            ctype = {k.lower(): v for k, v in response.headers.items()}["content-type"]
            ctype = ctype[0] if isinstance(ctype, list) else ctype
            assert ctype.split(";")[0] == "application/json", ctype
            body = response.json()
            if response.status_code >= 400:
                assert set(body["error"]) >= {"type", "message"}, body

        check()
    # And the server still serves. Asked with a new user's token: the fuzzer may have revoked
    # its own (DELETE /tokens/{id} with a small id), which CI drew once.
    after, fresh = den.user("after-fuzz")
    assert fresh.whoami()["name"] == after
