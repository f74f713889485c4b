"""The one access rule, and CSV cells that cannot become formulas."""

from decimal import Decimal

import pytest

from costapp import csvsafe
from costapp.access import can_change_settings, has_any_access, visible_teams


@pytest.mark.django_db
def test_visible_teams_by_role(world):
    assert visible_teams(world.admin) is None
    assert visible_teams(world.finance) is None
    assert visible_teams(world.alice) == {"payments"}
    assert visible_teams(world.bob) == {"search"}
    assert visible_teams(world.outsider) == frozenset()
    assert not has_any_access(world.outsider) and has_any_access(world.alice)


@pytest.mark.django_db
def test_only_admins_change_settings(world):
    assert can_change_settings(world.admin)
    assert not can_change_settings(world.finance) and not can_change_settings(world.alice)


@pytest.mark.parametrize("cell", ["=1+1", "+1", "-1", "@SUM(A1)", "\tx", "\rx"])
def test_dangerous_text_is_prefixed(cell):
    assert csvsafe.safe_cell(cell) == "'" + cell


def test_numbers_stay_numbers():
    assert csvsafe.safe_cell(-1.5) == -1.5
    assert csvsafe.safe_cell(Decimal("-2.00")) == Decimal("-2.00")
    text = csvsafe.csv_text(["a", "b"], [["=x", -3]])
    assert text.splitlines()[1] == "'=x,-3"
