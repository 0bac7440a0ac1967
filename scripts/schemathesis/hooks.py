# Schemathesis hooks for Marina's fuzz test (test/api/fuzz.test.ts loads them with
# SCHEMATHESIS_HOOKS=hooks and this directory on PYTHONPATH).
import os

import schemathesis


def _is_true(value):
    return value is True or value == "true"


@schemathesis.hook
def map_case(context, case):
    """A watch streams until the client leaves: bound every generated watch to one second
    (timeoutSeconds, as in Kubernetes) so that the fuzzer reads whole answers. A timeoutSeconds
    the schema refuses is left alone: it must be answered with a 400 before any stream starts."""
    query = case.query
    if not isinstance(query, dict) or not _is_true(query.get("watch")):
        return case
    timeout = query.get("timeoutSeconds")
    valid = isinstance(timeout, int) and not isinstance(timeout, bool) and timeout >= 1
    if timeout is None or valid or (isinstance(timeout, str) and timeout.isdigit() and int(timeout) >= 1):
        query["timeoutSeconds"] = 1
    return case


# The fuzzer's own identity and workspace, and the function and pipeline it calls (set by the
# test): deleting or changing them would turn the rest of the run into 401s and 404s that test
# nothing.
_PROTECTED = {
    "users": os.environ.get("MARINA_FUZZ_USER"),
    "tokens": os.environ.get("MARINA_FUZZ_TOKEN_ID"),
    "projects": os.environ.get("MARINA_FUZZ_PROJECT"),
    "functions": os.environ.get("MARINA_FUZZ_FUNCTION"),
    "pipelines": os.environ.get("MARINA_FUZZ_PIPELINE"),
}


@schemathesis.hook
def filter_case(context, case):
    if case.method.upper() not in ("PUT", "PATCH", "DELETE"):
        return True
    params = case.path_parameters or {}
    target = params.get("name", params.get("id"))
    collection = case.operation.path.rstrip("/").split("/")[-2] if target is not None else None
    return target is None or _PROTECTED.get(collection) != target
