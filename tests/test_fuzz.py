"""Fuzzing every reader of an outside file (hypothesis; the harness is tests/fuzz_readers.py).

Each case must end in a clean load or a clean one-line error within a memory ceiling - never a
traceback. The budget here is small (CI); ``scripts/fuzz.py`` runs the same harness for longer.
"""
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fuzz_readers import KINDS, READERS, mutate, run_case

EXAMPLES = {"state.pt": 12, "model.json": 12, "config.json": 12}  # these rebuild a model: fewer cases

ops = st.lists(st.tuples(st.sampled_from(KINDS), st.integers(0, 1 << 16), st.integers(0, 255)),
               min_size=1, max_size=4)


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz")


@pytest.mark.parametrize("name", list(READERS))
def test_reader_survives_mutations(name, work):
    reader = READERS[name]
    folder = work / name
    folder.mkdir(exist_ok=True)
    seed = reader.seed(folder)
    reader.read(reader.place(folder, seed))  # the unmutated file loads (and the imports are done, untraced)
    assert run_case(reader, folder, seed)[0] == "load"

    @settings(max_examples=EXAMPLES.get(name, 40), deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    @given(ops)
    def case(mutations):
        run_case(reader, folder, mutate(seed, mutations, reader.structured))

    case()
