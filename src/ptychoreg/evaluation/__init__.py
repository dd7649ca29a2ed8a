"""How a reconstruction is judged: quality figures against the true object, the classical ePIE reference,
and small simulated datasets for tests."""
