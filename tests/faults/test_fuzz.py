"""Property-based fuzzing of the parsers that read user input: any input gives data or
a clear one-line error, never an escaping exception."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from preflight.probes import dotenv, netif
from preflight.redact import Scrubber, redact_argv

NAMES = ["lo", "eth0", "eth1", "docker0", "ib0", "ens3f0"]


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2048))
def test_env_file_bytes_parse_or_fail_in_one_line(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("env") / ".env"
    path.write_bytes(data)
    try:
        parsed = dotenv.read(path)
    except dotenv.EnvFileError as exc:
        message = str(exc)
        assert "\n" not in message and message.startswith(str(path))
        return
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in parsed.values.items())


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=400))
def test_env_file_text_never_echoes_values_in_errors(tmp_path_factory, text):
    path = tmp_path_factory.mktemp("env") / ".env"
    secret = "fuzz-canary-5a1b2c3d"
    path.write_text(f"TOKEN={secret}\n{text}", encoding="utf-8", errors="surrogatepass")
    try:
        dotenv.read(path)
    except dotenv.EnvFileError as exc:
        assert secret not in str(exc)
    except UnicodeEncodeError:
        pass


@settings(max_examples=500, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("^=,. lethibdockr0123 \t")), max_size=30))
def test_nccl_ifname_syntax_total(spec):
    selected = netif.select(spec, NAMES)
    assert set(selected) <= set(NAMES)
    body = spec.strip().lstrip("^").lstrip("=")
    listed = [w.strip() for w in body.split(",") if w.strip()]
    hits = {n for n in NAMES if any(n.startswith(w) for w in listed)}
    if spec.strip().startswith("^"):
        assert set(selected) >= set(NAMES) - hits  # exclusion never drops an unlisted name
    else:
        assert set(selected) <= hits  # inclusion selects only listed prefixes


@settings(max_examples=300, deadline=None)
@given(st.lists(st.text(max_size=30), max_size=12), st.text(min_size=4, max_size=20))
def test_redaction_total_and_scrubs(argv, secret):
    out = redact_argv(argv)
    assert len(out) == len(argv)
    scrub = Scrubber([secret])
    assert secret not in scrub(" ".join(argv) + secret)


_KEYS = st.sampled_from(["A", "B", "HOME", "X_1", "EXISTING_FUZZ"])
_VALUE = st.lists(st.one_of(st.sampled_from(["${A}", "$B", "${HOME}", "${X_1:-d}", "${NOPE}",
                                             "'", '"', " ", "x", "${", "}"]),
                            st.text(alphabet="abc/-_.", max_size=4)), max_size=5).map("".join)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(_KEYS, _VALUE), max_size=8))
def test_env_interpolation_matches_python_dotenv(tmp_path_factory, pairs):
    # The real tool is the oracle: our linear interpolation against dotenv_values itself.
    import io
    import os

    from dotenv import dotenv_values

    os.environ.setdefault("EXISTING_FUZZ", "from-env")
    text = "".join(f"{k}={v}\n" for k, v in pairs)
    path = tmp_path_factory.mktemp("env") / ".env"
    path.write_text(text)
    try:
        ours = dict(dotenv.read(path).values)
    except dotenv.EnvFileError:
        return
    theirs = dotenv_values(stream=io.StringIO(text), interpolate=True)
    assert ours == {k: v for k, v in theirs.items() if v is not None}
