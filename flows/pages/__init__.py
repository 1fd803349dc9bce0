"""Read models of the pages: one module per page area, each a function that returns one dataclass, built from the
waste and battery rooms' own figures; no page recomputes a figure another way."""
