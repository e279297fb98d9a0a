"""Every registered name resolves to a class honouring its family's contract."""

import pytest

from recpoison.attacks import ATTACKS, Attack, attack_class
from recpoison.attacks.base import REQUIREMENTS, EdgeAttack
from recpoison.detectors import DETECTORS, detector_class
from recpoison.errors import ConfigError
from recpoison.victims import VICTIMS, Recommender, make_victim, victim_class
from recpoison.victims.base import CAPABILITIES


@pytest.mark.parametrize("name", sorted(VICTIMS))
def test_victims_resolve_and_declare_known_capabilities(name):
    cls = victim_class(name)
    assert issubclass(cls, Recommender)
    assert cls.capabilities and cls.capabilities <= CAPABILITIES
    model = make_victim(name, n_replicas=2, random_state=0, device="cpu")
    assert model.get_params()["n_replicas"] == 2
    assert type(model.clone()) is cls


#: Constructor arguments of attacks that have no default for them.
REQUIRED_PARAMS = {"from-file": {"path": "profiles.csv"}}


@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_attacks_resolve_and_declare_known_requirements(name):
    cls = attack_class(name)
    assert cls.requires <= REQUIREMENTS
    params = REQUIRED_PARAMS.get(name, {})
    if issubclass(cls, EdgeAttack):  # untargeted edge flips: a budget, no fake profiles
        assert cls.goal == "untargeted" and "n_fillers" not in cls(**params).get_params()
    else:
        assert issubclass(cls, Attack)
        assert "n_fillers" in cls(**params).get_params()


@pytest.mark.parametrize("name", sorted(DETECTORS))
def test_detectors_resolve(name):
    cls = detector_class(name)
    assert hasattr(cls, "fit")


def test_unknown_name_suggests_the_closest():
    with pytest.raises(ConfigError, match="did you mean 'neumf'"):
        victim_class("nuemf")
    with pytest.raises(ConfigError, match="choose one of"):
        attack_class("zzz")
