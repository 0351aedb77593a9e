"""Named departures: what a failing implementation computes instead of the spec.

A catalogue per kind (:mod:`.catalogue_sdpa` with :mod:`.catalogue_tiles` and :mod:`.catalogue_variants`,
:mod:`.catalogue_mha`, :mod:`.catalogue_pe`, and the departures both attention kinds share in :mod:`.shared`)
lists the known departures, each a named alternative formula with a one-line description (:mod:`.entry`). When
a clause fails, the runner has the backend called on the failing cases and on kqv's canonical probes where the
backend runs (:func:`.evidence.observe`, in its worker process or in this one), and :func:`.naming.diagnose`
names every departure that explains them to rounding, within the error bound kqv uses for the reference,
computed for the departure's own formula.
"""

from .naming import Named, diagnose, name_departures
from .evidence import CATALOGUES, Evidence, observe

__all__ = ["CATALOGUES", "Evidence", "Named", "diagnose", "name_departures", "observe"]
