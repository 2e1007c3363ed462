import pytest

from hellora.profiling import ExpertProfile, compare_profiles
from hellora.utils.errors import HelloraError


def _profile(counts, **kw):
    return ExpertProfile(layers=list(range(len(counts))), counts=counts, mass=[], tokens=[], num_experts=len(counts[0]),
                         top_k=2, fingerprint="abc", **kw)


def test_compare_jaccard_and_coverage_by_hand():
    full = _profile([[9, 8, 1, 0], [0, 1, 8, 9]])   # hot {0,1}, {2,3}
    part = _profile([[9, 1, 8, 0], [0, 1, 8, 9]])   # hot {0,2}, {2,3}
    result = compare_profiles(part, full)
    assert result["jaccard"] == pytest.approx((1 / 3 + 1) / 2)
    assert result["coverage"] == pytest.approx((1 / 2 + 1) / 2)


def test_select_defaults_to_router_top_k_and_keeps_provenance(tmp_path):
    profile = _profile([[9, 8, 1, 0], [0, 1, 8, 9]], source={"data": "gsm8k", "fraction": 0.1})
    placement = profile.select()
    assert placement.k == 2 and placement.experts == {0: [0, 1], 1: [2, 3]}
    assert placement.source["fraction"] == 0.1
    profile.save(tmp_path / "p.json")
    assert ExpertProfile.load(tmp_path / "p.json").counts == profile.counts


def test_top_k_share():
    assert _profile([[6, 2, 1, 1]]).top_k_share() == {0: pytest.approx(0.8)}


def test_bad_profiles_are_refused(tmp_path):
    (tmp_path / "x.json").write_text('{"format": "something"}')
    with pytest.raises(HelloraError, match="not a hellora profile"):
        ExpertProfile.load(tmp_path / "x.json")
    with pytest.raises(HelloraError, match="different model"):
        compare_profiles(_profile([[1, 2]]), ExpertProfile(layers=[0], counts=[[1, 2]], mass=[], tokens=[],
                                                            num_experts=2, top_k=1, fingerprint="zzz"))
