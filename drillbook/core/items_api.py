"""What drillbook knows of the items API contract (the reference service's, lab/README.md).

Listing is keyset-paginated in id order, and a cursor is documented as the base64url
(unpadded) of the last id of the previous page. Checks that page through the list to
find items they have just created start from a cursor just before those items: paging
from the first item costs time in proportion to everything the service ever stored
(a lab that has run load tests holds hundreds of thousands of items), and the part
worth checking, the newest rows while others are being inserted, is at the end.
"""

from __future__ import annotations

import base64


def cursor_after(last_id: int) -> str:
    """The cursor of a page that starts with the first item whose id is above ``last_id``."""
    return base64.urlsafe_b64encode(str(max(0, last_id)).encode()).rstrip(b"=").decode()
