from ssvm_operator.model.naming import MAX_NAME, free_slot_names, slot_of, ssvm_name


def test_names_are_deterministic_and_lowest_slot_first():
    assert ssvm_name("z1", 1) == "z1-ssvm-1"
    assert free_slot_names("z1", ["z1-ssvm-1", "z1-ssvm-3", "user-ssvm"], 3) == ["z1-ssvm-2", "z1-ssvm-4", "z1-ssvm-5"]


def test_slot_of_recognises_only_this_zones_names():
    assert slot_of("z1", "z1-ssvm-12") == 12
    assert slot_of("z1", "z2-ssvm-1") is None
    assert slot_of("z1", "z1-ssvm-01") is None
    assert slot_of("z1", "mine") is None


def test_long_zone_names_are_cut_with_a_digest_and_stay_distinct():
    a, b = ssvm_name("a" * 80, 7), ssvm_name("a" * 79 + "b", 7)
    assert len(a) <= MAX_NAME and len(b) <= MAX_NAME and a != b
    assert slot_of("a" * 80, a) == 7
