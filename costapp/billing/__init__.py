"""Billing and prices: FOCUS bills, public price catalogs and node-hour pricing.

`focus` (streaming FOCUS reader and resource matching) and `catalog` (price catalogs and OpenCost
default unit prices) are pure: they import no Django and can be used offline. The Django side
(`importer`, `pricing`) builds on them.
"""

from costapp.billing.focus import BillingFileError, FocusCharge, iter_focus_rows

__all__ = ["BillingFileError", "FocusCharge", "iter_focus_rows"]
